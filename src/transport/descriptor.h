// Serializable descriptions of registered memory and of a process's connection information.
//
// Descriptors travel between processes over a control plane this layer does not own; they are
// plain bytes with a magic, a format version and an XXH64 checksum, so a truncated, corrupted or
// foreign message is refused (kDataLoss) instead of being turned into a write.
//
// Threading: plain values; copy freely.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightsync/status.h"

namespace weightsync::transport {

enum class MemoryKind : uint8_t { kHost = 0, kCuda = 1 };
std::string_view MemoryKindName(MemoryKind kind);

// Which process owns a region or an address: enough to name it in errors and to tell whether it
// shares this host (and so whether its liveness can be checked through its pid).
struct OwnerIdentity {
  std::string host;        // hostname
  uint64_t boot_id = 0;    // hash of /proc/sys/kernel/random/boot_id: same host and same boot
  uint64_t pid_ns = 0;     // inode of /proc/self/ns/pid: pids are comparable only within one
  int64_t pid = 0;
  int32_t rank = 0;        // the caller's rank (trainer or inference), for messages

  // "rank 3 (host gpu-07 pid 4242)".
  std::string ToString() const;
  // Same host, same boot and same pid namespace: the pid names a process we can check.
  bool SameMachineAs(const OwnerIdentity& other) const;
  friend bool operator==(const OwnerIdentity&, const OwnerIdentity&) = default;
};

// This process's identity with the given rank.
OwnerIdentity CurrentProcessIdentity(int32_t rank);

// A registered region as a peer sees it.
struct RegionDescriptor {
  std::string backend;          // "local", "ucx", "cuda_ipc"
  std::string name;             // the owner's name for the region (tensor or slot)
  MemoryKind kind = MemoryKind::kHost;
  uint64_t address = 0;         // in the owner's address space
  uint64_t length = 0;
  uint64_t region_id = 0;       // the owner's RegionId, for messages and sanity checks
  OwnerIdentity owner;
  std::vector<uint8_t> key;     // access key: a packed UCX rkey, a CUDA IPC handle; empty when
                                // the region was never registered with a backend

  std::vector<uint8_t> Serialize() const;
  static Result<RegionDescriptor> Deserialize(std::span<const uint8_t> bytes);
  // "region 'layers.0.w13' (4096 bytes at 0x7f.., rank 1 (host a pid 7))".
  std::string ToString() const;
};

// A process's connection information for one backend (a UCX worker address, a socket name).
struct PeerAddress {
  std::string backend;
  OwnerIdentity owner;
  std::vector<uint8_t> address;

  std::vector<uint8_t> Serialize() const;
  static Result<PeerAddress> Deserialize(std::span<const uint8_t> bytes);
};

}  // namespace weightsync::transport
