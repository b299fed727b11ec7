// The transport interface: one-sided writes from this process's registered memory into a peer's.
//
// A push moves millions of writes from trainer memory into inference memory. Every backend (local,
// ucx, cuda_ipc) sits behind this one interface so the code above it is the same on a laptop (TCP,
// shared memory), within a GPU host (NVLink) and across hosts (RDMA).
//
// Life of a transfer:
//   target: Register(buffer) -> Export(region) -> RegionDescriptor bytes + LocalAddress() bytes
//           travel to the writer over the control plane (not this layer's job).
//   writer: Connect(peer address) -> Import(peer, descriptor, min_length) -> PostWrites(...)
//           (blocks while the in-flight window is full) -> Flush(peer, deadline): remote complete.
//
// Validation happens before any byte moves: an import of a descriptor that is malformed, from
// another backend, owned by a process other than the connected peer, unregistered (no access key)
// or shorter than the caller needs is refused; a batch with any write out of bounds of its local
// or remote region is refused whole, before its first write is posted.
//
// Threading contract: a Transport is NOT thread-safe. All calls on one instance, including
// Progress(), must come from one thread at a time (the UCX worker runs in single-thread mode).
// Different instances may be used concurrently from different threads. Handles (RegionId,
// PeerId, RemoteRegionId) are plain values owned by the Transport that issued them; they become
// invalid when it is destroyed, and a stale handle is an error, never undefined behaviour.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "transport/descriptor.h"
#include "weightsync/status.h"

namespace weightsync::transport {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline Deadline DeadlineIn(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds));
}

// What a backend can do, queried at run time (the library or hardware may be missing).
struct Capabilities {
  bool available = false;
  std::string unavailable_reason;  // "unavailable: libucp.so.0: cannot open shared object file"
  bool host_memory = false;        // can register and write host memory
  bool gpu_memory = false;         // can register and write CUDA device memory
  bool cross_host = false;         // peers may be on other hosts
  bool one_sided = false;          // writes need no action by the target's CPU...
  bool target_progress = false;    // ...unless this is true: the target must call Progress()
                                   // while peers write (UCX over TCP emulates puts with messages)
  std::string detail;              // library version, transports, chosen NICs
};

// A region registered in this process, identified by a small handle.
struct RegionId {
  uint64_t value = 0;
  friend bool operator==(RegionId, RegionId) = default;
};
// A connected peer.
struct PeerId {
  uint64_t value = 0;
  friend bool operator==(PeerId, PeerId) = default;
};
// A peer's region, imported on one connection.
struct RemoteRegionId {
  uint64_t value = 0;
  friend bool operator==(RemoteRegionId, RemoteRegionId) = default;
};

// One one-sided write: `length` bytes at local region + local_offset go to remote region +
// remote_offset. A zero-length write is allowed and moves nothing.
struct Write {
  RegionId local;
  uint64_t local_offset = 0;
  RemoteRegionId remote;
  uint64_t remote_offset = 0;
  uint64_t length = 0;
};

// Counters for tests and benchmarks.
struct TransportStats {
  uint64_t writes_posted = 0;
  uint64_t bytes_posted = 0;
  uint64_t max_in_flight_seen = 0;  // never above TransportOptions::max_in_flight
};

struct TransportOptions {
  OwnerIdentity self;  // filled from the process by default (rank 0)
  int64_t max_in_flight = DefaultCount("transport.max_in_flight");
  double connect_timeout_s = DefaultSeconds("transport.connect_timeout");
  double write_timeout_s = DefaultSeconds("transport.write_timeout");
  // UCX only.
  std::string ucx_library_dir;  // transport.ucx_library_dir: "" = libucp.so.0 on the search path
  std::string ucx_tls;          // transport.ucx_tls: "" leaves UCX's choice / UCX_TLS
  std::string ucx_net_devices;  // transport.ucx_net_devices: "" = closest NIC to the GPU
  std::string gpu_pci_bus_id;   // the GPU this process drives ("0000:1b:00.0"), for NICs
  // The host of the job's store. When no NIC is chosen otherwise, UCX's network listeners are kept
  // on the interface that reaches it: loopback for a store on loopback (every peer is then on this
  // host), never every interface. "": UCX's default (every interface).
  std::string rendezvous_host;
  std::string sysfs_root = "/sys";  // for tests of NIC selection
  // cuda_ipc only.
  int cuda_device = 0;
  int64_t cuda_streams = DefaultCount("transport.cuda_streams");
  // 0: no batched small-write kernel.
  uint64_t cuda_small_write_bytes = DefaultBytes("transport.cuda_small_write_bytes");
};

// Reads the transport.* rows of the config table into options (self identity from the process).
Result<TransportOptions> OptionsFromConfig(const Config& config, int32_t rank = 0);

class Transport {
 public:
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  virtual std::string_view name() const = 0;
  virtual const Capabilities& capabilities() const = 0;
  virtual const OwnerIdentity& self() const = 0;

  // Registers [address, address + length) once; `name` appears in every error about the region.
  virtual Result<RegionId> Register(void* address, uint64_t length, MemoryKind kind,
                                    std::string_view name) = 0;
  // Allocates `length` bytes of host memory from the backend's own allocator and registers it;
  // Deregister frees it. For UCX this is shared memory on one host, so puts into it over shared
  // memory are one-sided copies by the writer; registered ordinary memory is reached there only by
  // puts that UCX 1.13 emulates with messages the target must progress (docs/transport.md).
  // kUnimplemented for backends without host memory.
  virtual Result<RegionId> AllocateAndRegister(uint64_t length, std::string_view name) = 0;
  // The start of a registered region (where AllocateAndRegister put it).
  virtual Result<void*> RegionAddress(RegionId region) const = 0;
  // Deregisters; descriptors exported for it must no longer be used by peers.
  virtual Status Deregister(RegionId region) = 0;
  // The serializable descriptor of a registered region, to send to writers.
  virtual Result<RegionDescriptor> Export(RegionId region) = 0;

  // This process's connection information, to send to writers.
  virtual Result<PeerAddress> LocalAddress() = 0;
  virtual Result<PeerId> Connect(const PeerAddress& peer, Deadline deadline) = 0;
  // Drops the connection and every region imported on it; outstanding writes are abandoned.
  // Always succeeds for a known peer, even a dead one, so the writer can reconnect.
  virtual Status Disconnect(PeerId peer) = 0;

  // Imports a peer's region. Refused (kInvalidArgument / kFailedPrecondition) when the descriptor
  // is for another backend, is not owned by `peer`, carries no access key (unregistered), or is
  // shorter than `min_length` bytes.
  virtual Result<RemoteRegionId> Import(PeerId peer, const RegionDescriptor& descriptor,
                                        uint64_t min_length) = 0;

  // Posts writes to one peer. The batch is validated whole first. Blocks (progressing) while
  // max_in_flight writes are outstanding, until `deadline`. Writes are complete at the target only
  // after Flush returns OK. An error names the peer and the region; after a peer error the
  // connection is unusable: Disconnect and Connect again.
  virtual Status PostWrites(PeerId peer, std::span<const Write> writes, Deadline deadline) = 0;
  // Waits until every posted write to `peer` is complete at the target.
  virtual Status Flush(PeerId peer, Deadline deadline) = 0;
  // A mark after the writes posted to `peer` so far. WaitMark(peer, mark) returns once all of
  // them are done reading their local bytes, which may then be overwritten (remote completion
  // still needs Flush): a writer reuses staging memory while later writes stay in flight.
  // Backends without per-write tracking wait as Flush does.
  virtual Result<uint64_t> Mark(PeerId peer) = 0;
  virtual Status WaitMark(PeerId peer, uint64_t mark, Deadline deadline) = 0;

  // Drives the backend once without blocking (targets of backends with target_progress call it
  // in their serving loop).
  virtual void Progress() = 0;

  virtual TransportStats stats() const = 0;

 protected:
  Transport() = default;
};

// The backends this build knows, in the order tests and `weightsync info` list them.
std::vector<std::string> BackendNames();

// Probes a backend without creating it fully (loads its library, queries its capabilities).
Capabilities ProbeBackend(std::string_view backend, const TransportOptions& options);

// Creates a backend; kUnavailable with the reason when its library or hardware is missing,
// kNotFound for an unknown name.
Result<std::unique_ptr<Transport>> CreateTransport(std::string_view backend,
                                                   const TransportOptions& options);

}  // namespace weightsync::transport
