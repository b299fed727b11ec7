#include "transport/staging_pool.h"

#include <algorithm>
#include <cstdlib>

#include "core/log.h"
#ifdef WEIGHTSYNC_HAVE_CUDA_H
#include "transport/cuda_api.h"
#endif

namespace weightsync::transport {
namespace {

constexpr uint64_t kHostAlignment = 2ull << 20;  // lets the kernel back the pool with huge pages

uint64_t RoundUp(uint64_t value, uint64_t to) { return (value + to - 1) / to * to; }

#ifdef WEIGHTSYNC_HAVE_CUDA_H
// Makes the primary context of `device` current: the driver's allocation calls need one.
Result<const CudaApi*> CudaOn(int device) {
  WS_ASSIGN_OR_RETURN(const CudaApi* api, LoadCudaApi());
  CUdevice dev = 0;
  CUcontext context = nullptr;
  CUresult r = api->init(0);
  if (r == CUDA_SUCCESS) r = api->device_get(&dev, device);
  if (r == CUDA_SUCCESS) r = api->primary_ctx_retain(&context, dev);
  if (r == CUDA_SUCCESS) r = api->ctx_set_current(context);
  if (r != CUDA_SUCCESS) return Unavailable("CUDA device ", device, ": ", api->ErrorText(r));
  return api;
}
#endif

}  // namespace

Result<std::unique_ptr<StagingPool>> StagingPool::Create(Transport& transport, PoolMemory memory,
                                                         uint64_t capacity, std::string name,
                                                         int cuda_device) {
  if (capacity == 0) return InvalidArgument("staging pool ", name, ": capacity is 0");
  std::unique_ptr<StagingPool> pool(new StagingPool());
  pool->transport_ = &transport;
  pool->name_ = std::move(name);
  pool->memory_ = memory;
  pool->cuda_device_ = cuda_device;
  capacity = RoundUp(capacity, kAlignment);
  if (memory == PoolMemory::kCuda) {
#ifdef WEIGHTSYNC_HAVE_CUDA_H
    WS_ASSIGN_OR_RETURN(const CudaApi* api, CudaOn(cuda_device));
    CUdeviceptr ptr = 0;
    if (CUresult r = api->mem_alloc(&ptr, capacity); r != CUDA_SUCCESS) {
      return ResourceExhausted("staging pool ", pool->name_, ": cuMemAlloc of ", capacity,
                               " bytes on GPU ", cuda_device, ": ", api->ErrorText(r));
    }
    pool->base_ = reinterpret_cast<void*>(ptr);
    pool->backing_ = Backing::kDevice;
#else
    return Unavailable("staging pool ", pool->name_, ": this build has no CUDA support");
#endif
  } else {
    capacity = RoundUp(capacity, kHostAlignment);
#ifdef WEIGHTSYNC_HAVE_CUDA_H
    if (auto api = CudaOn(cuda_device); api.ok()) {
      void* host = nullptr;
      if ((*api)->mem_host_alloc(&host, capacity, CU_MEMHOSTALLOC_PORTABLE) == CUDA_SUCCESS) {
        pool->base_ = host;
        pool->backing_ = Backing::kPinned;
        pool->stats_.pinned = true;
      }
    }
#endif
    if (!pool->base_) {
      pool->base_ = std::aligned_alloc(kHostAlignment, capacity);
      if (!pool->base_) {
        return ResourceExhausted("staging pool ", pool->name_, ": cannot allocate ", capacity,
                                 " bytes of host memory");
      }
      pool->backing_ = Backing::kAligned;
    }
  }
  pool->stats_.capacity = capacity;
  auto region = transport.Register(pool->base_, capacity,
                                   memory == PoolMemory::kCuda ? MemoryKind::kCuda
                                                               : MemoryKind::kHost,
                                   pool->name_);
  if (!region.ok()) return region.status().WithContext("staging pool " + pool->name_);
  pool->region_ = *region;
  pool->free_[0] = capacity;
  Log(LogLevel::kDebug, "staging pool ", pool->name_, ": ", capacity, " bytes of ",
      memory == PoolMemory::kCuda ? "GPU" : (pool->stats_.pinned ? "pinned host" : "host"),
      " memory registered with ", transport.name());
  return pool;
}

StagingPool::~StagingPool() {
  if (!base_) return;
  if (region_.value) transport_->Deregister(region_).ok();  // nothing to report it to here
  switch (backing_) {
    case Backing::kAligned:
      std::free(base_);
      break;
#ifdef WEIGHTSYNC_HAVE_CUDA_H
    case Backing::kPinned:
      if (auto api = CudaOn(cuda_device_); api.ok()) (*api)->mem_free_host(base_);
      break;
    case Backing::kDevice:
      if (auto api = CudaOn(cuda_device_); api.ok()) {
        (*api)->mem_free(reinterpret_cast<CUdeviceptr>(base_));
      }
      break;
#else
    default:
      break;
#endif
  }
}

Result<Slot> StagingPool::Allocate(uint64_t bytes, std::string_view what) {
  const uint64_t size = RoundUp(std::max<uint64_t>(bytes, 1), kAlignment);
  auto fit = std::find_if(free_.begin(), free_.end(),
                          [&](const auto& range) { return range.second >= size; });
  if (fit == free_.end()) {
    uint64_t largest = 0;
    for (const auto& [offset, length] : free_) largest = std::max(largest, length);
    return ResourceExhausted("staging pool ", name_, ": no room for ", what, " (", bytes,
                             " bytes): ", stats_.capacity - stats_.in_use, " of ",
                             stats_.capacity, " bytes free, largest free range ", largest);
  }
  const auto [offset, length] = *fit;
  free_.erase(fit);
  if (length > size) free_[offset + size] = length - size;
  used_[offset] = size;
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  ++stats_.slots_in_use;
  return Slot{region_, offset, bytes, static_cast<char*>(base_) + offset};
}

Status StagingPool::Free(const Slot& slot) {
  auto it = used_.find(slot.offset);
  if (slot.region != region_ || it == used_.end()) {
    return InvalidArgument("staging pool ", name_, ": the slot at offset ", slot.offset,
                           " is not allocated from this pool");
  }
  uint64_t offset = it->first, size = it->second;
  used_.erase(it);
  stats_.in_use -= size;
  --stats_.slots_in_use;
  // Coalesce with the free neighbours on both sides.
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + size == next->first) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += size;
      return Status::Ok();
    }
  }
  free_[offset] = size;
  return Status::Ok();
}

}  // namespace weightsync::transport
