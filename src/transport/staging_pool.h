// StagingPool: registered memory for staging converted weights ("slots") before they are written.
//
// One allocation per pool, registered with the transport once, carved into slots by a first-fit
// allocator: registering thousands of slots one by one (the seed registered 1,626 per rank) costs
// start-up time and NIC/IOMMU entries, and a single region keeps descriptors few.
//   - host pools are pinned (cuMemHostAlloc) when a CUDA driver and device are present, so copy
//     engines and RDMA NICs can DMA them; otherwise page-aligned ordinary memory;
//   - GPU pools take plain cuMemAlloc memory (what cudaMalloc returns), never PyTorch's expandable
//     segments: RDMA writes into cuMemMap-backed ranges fail ("Local protection", seed).
// Peak usage is tracked so a run can report how much staging it really needed.
//
// Threading contract: not thread-safe; one thread at a time (like the Transport it registers
// with, which must outlive the pool).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "transport/transport.h"

namespace weightsync::transport {

enum class PoolMemory : uint8_t { kHost, kCuda };

struct Slot {
  RegionId region;      // the pool's one registered region
  uint64_t offset = 0;  // within the region
  uint64_t size = 0;
  void* data = nullptr;  // host or device address of the slot
};

struct PoolStats {
  uint64_t capacity = 0;
  uint64_t in_use = 0;
  uint64_t peak_in_use = 0;
  uint64_t slots_in_use = 0;
  bool pinned = false;  // host pools: page-locked through the CUDA driver
};

class StagingPool {
 public:
  // Every slot starts at a multiple of this (DMA engines and vector loads like aligned starts).
  static constexpr uint64_t kAlignment = 256;

  static Result<std::unique_ptr<StagingPool>> Create(Transport& transport, PoolMemory memory,
                                                     uint64_t capacity, std::string name,
                                                     int cuda_device = 0);
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // kResourceExhausted naming `what`, the request and the largest free range when it does not fit.
  Result<Slot> Allocate(uint64_t bytes, std::string_view what);
  // kInvalidArgument for a slot this pool did not hand out (or already freed).
  Status Free(const Slot& slot);

  const PoolStats& stats() const { return stats_; }
  RegionId region() const { return region_; }
  const std::string& name() const { return name_; }

 private:
  StagingPool() = default;

  Transport* transport_ = nullptr;
  std::string name_;
  PoolMemory memory_ = PoolMemory::kHost;
  void* base_ = nullptr;
  RegionId region_;
  std::map<uint64_t, uint64_t> free_;  // offset -> size, coalesced
  std::map<uint64_t, uint64_t> used_;  // offset -> size
  PoolStats stats_;
  // How base_ was obtained, so the destructor releases it the same way.
  enum class Backing : uint8_t { kAligned, kPinned, kDevice } backing_ = Backing::kAligned;
  int cuda_device_ = 0;
};

}  // namespace weightsync::transport
