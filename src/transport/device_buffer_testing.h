// DeviceBuffer: device memory for GPU transport tests, allocated through the driver API that
// cuda_api.h loads at run time: cuMemAlloc (cuda_ipc exports it with cuIpcGetMemHandle), or
// cuMem allocations of `chunk` bytes mapped back to back in one reserved range, as PyTorch's
// expandable segments (fd handle type) and vLLM's sleep-mode allocator (none) lay memory out.
// Test-only code; compiled only where cuda.h was found.
//
// Threading: one thread at a time; the primary context of `device` is made current on it.
#pragma once

#include <cstdlib>
#include <span>
#include <vector>

#include "transport/cuda_api.h"

namespace weightsync::transport::testing {

// A size from the environment (GPU tests scale with the host), else `fallback`.
inline uint64_t EnvBytes(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

class DeviceBuffer {
 public:
  static Result<DeviceBuffer> Allocate(int device, uint64_t bytes) {
    WS_ASSIGN_OR_RETURN(DeviceBuffer buffer, OnDevice(device, bytes));
    WS_RETURN_IF_ERROR(
        Check(buffer.api_, buffer.api_->mem_alloc(&buffer.ptr_, bytes), "cuMemAlloc"));
    return buffer;
  }
  // `bytes` rounded up to whole chunks; `chunk` is rounded up to the allocation granularity.
  static Result<DeviceBuffer> AllocateChunked(int device, uint64_t bytes, uint64_t chunk,
                                              CUmemAllocationHandleType handle_type) {
    WS_ASSIGN_OR_RETURN(DeviceBuffer buffer, OnDevice(device, bytes));
    const CudaApi* api = buffer.api_;
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device;
    prop.requestedHandleTypes = handle_type;
    size_t granularity = 0;
    WS_RETURN_IF_ERROR(Check(
        api,
        api->mem_get_allocation_granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
        "cuMemGetAllocationGranularity"));
    buffer.chunk_ = (chunk + granularity - 1) / granularity * granularity;
    buffer.reserved_ = (bytes + buffer.chunk_ - 1) / buffer.chunk_ * buffer.chunk_;
    WS_RETURN_IF_ERROR(Check(api, api->mem_address_reserve(&buffer.ptr_, buffer.reserved_, 0, 0, 0),
                             "cuMemAddressReserve"));
    for (uint64_t at = 0; at < buffer.reserved_; at += buffer.chunk_) {
      CUmemGenericAllocationHandle handle = 0;
      WS_RETURN_IF_ERROR(
          Check(api, api->mem_create(&handle, buffer.chunk_, &prop, 0), "cuMemCreate"));
      buffer.handles_.push_back(handle);
      WS_RETURN_IF_ERROR(
          Check(api, api->mem_map(buffer.ptr_ + at, buffer.chunk_, 0, handle, 0), "cuMemMap"));
    }
    CUmemAccessDesc access{};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    WS_RETURN_IF_ERROR(Check(api, api->mem_set_access(buffer.ptr_, buffer.reserved_, &access, 1),
                             "cuMemSetAccess"));
    return buffer;
  }
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : api_(o.api_),
        ptr_(std::exchange(o.ptr_, 0)),
        size_(o.size_),
        chunk_(o.chunk_),
        reserved_(o.reserved_),
        handles_(std::move(o.handles_)) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (!ptr_) return;
    if (chunk_ == 0) {
      api_->mem_free(ptr_);
      return;
    }
    for (size_t i = 0; i < handles_.size(); ++i) {
      api_->mem_unmap(ptr_ + i * chunk_, chunk_);
      api_->mem_release(handles_[i]);
    }
    api_->mem_address_free(ptr_, reserved_);
  }

  // Lets the current context (this buffer's GPU) reach `peer_device` over NVLink/PCIe directly,
  // as cudaMemcpyPeer does; without it copies between GPUs are staged through the host.
  Status EnablePeerAccess(int peer_device) {
    CUdevice self = 0, peer = 0;
    CUcontext peer_context = nullptr;
    int can = 0;
    WS_RETURN_IF_ERROR(Check(api_, api_->device_get(&peer, peer_device), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(Check(api_, api_->device_get(&self, 0), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(
        Check(api_, api_->device_can_access_peer(&can, self, peer), "cuDeviceCanAccessPeer"));
    if (!can) return Unavailable("GPU 0 cannot access GPU ", peer_device, " directly");
    WS_RETURN_IF_ERROR(
        Check(api_, api_->primary_ctx_retain(&peer_context, peer), "cuDevicePrimaryCtxRetain"));
    CUresult result = api_->ctx_enable_peer_access(peer_context, 0);
    if (result == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) return Status::Ok();
    return Check(api_, result, "cuCtxEnablePeerAccess");
  }

  void* data() const { return reinterpret_cast<void*>(ptr_); }
  uint64_t chunk() const { return chunk_; }  // 0: one cuMemAlloc
  uint64_t size() const { return size_; }
  Status Upload(std::span<const uint8_t> host, uint64_t offset = 0) {
    return Check(api_, api_->memcpy_htod(ptr_ + offset, host.data(), host.size()), "cuMemcpyHtoD");
  }
  Status Download(std::span<uint8_t> host, uint64_t offset = 0) const {
    return Check(api_, api_->memcpy_dtoh(host.data(), ptr_ + offset, host.size()), "cuMemcpyDtoH");
  }

 private:
  // A buffer of `bytes` on `device` with its primary context current, not yet allocated.
  static Result<DeviceBuffer> OnDevice(int device, uint64_t bytes) {
    WS_ASSIGN_OR_RETURN(const CudaApi* api, LoadCudaApi());
    DeviceBuffer buffer;
    buffer.api_ = api;
    buffer.size_ = bytes;
    CUdevice dev = 0;
    CUcontext context = nullptr;
    WS_RETURN_IF_ERROR(Check(api, api->init(0), "cuInit"));
    WS_RETURN_IF_ERROR(Check(api, api->device_get(&dev, device), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(
        Check(api, api->primary_ctx_retain(&context, dev), "cuDevicePrimaryCtxRetain"));
    WS_RETURN_IF_ERROR(Check(api, api->ctx_set_current(context), "cuCtxSetCurrent"));
    return buffer;
  }
  static Status Check(const CudaApi* api, CUresult result, const char* what) {
    if (result == CUDA_SUCCESS) return Status::Ok();
    return Unavailable(what, ": ", api->ErrorText(result));
  }
  const CudaApi* api_ = nullptr;
  CUdeviceptr ptr_ = 0;
  uint64_t size_ = 0;
  uint64_t chunk_ = 0, reserved_ = 0;  // chunked: bytes per cuMem allocation, and in all
  std::vector<CUmemGenericAllocationHandle> handles_;
};

}  // namespace weightsync::transport::testing
