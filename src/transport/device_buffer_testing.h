// DeviceBuffer: device memory for GPU transport tests, allocated through the driver API that
// cuda_api.h loads at run time (cuMemAlloc, so cuda_ipc exports it with cuIpcGetMemHandle).
// Test-only code; compiled only where cuda.h was found.
//
// Threading: one thread at a time; the primary context of `device` is made current on it.
#pragma once

#include <span>

#include "transport/cuda_api.h"

namespace weightsync::transport::testing {

class DeviceBuffer {
 public:
  static Result<DeviceBuffer> Allocate(int device, uint64_t bytes) {
    WS_ASSIGN_OR_RETURN(const CudaApi* api, LoadCudaApi());
    DeviceBuffer buffer;
    buffer.api_ = api;
    buffer.size_ = bytes;
    CUdevice dev = 0;
    CUcontext context = nullptr;
    WS_RETURN_IF_ERROR(Check(api, api->init(0), "cuInit"));
    WS_RETURN_IF_ERROR(Check(api, api->device_get(&dev, device), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(Check(api, api->primary_ctx_retain(&context, dev), "cuDevicePrimaryCtxRetain"));
    WS_RETURN_IF_ERROR(Check(api, api->ctx_set_current(context), "cuCtxSetCurrent"));
    WS_RETURN_IF_ERROR(Check(api, api->mem_alloc(&buffer.ptr_, bytes), "cuMemAlloc"));
    return buffer;
  }
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : api_(o.api_), ptr_(std::exchange(o.ptr_, 0)), size_(o.size_) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (ptr_) api_->mem_free(ptr_);
  }

  // Lets the current context (this buffer's GPU) reach `peer_device` over NVLink/PCIe directly,
  // as cudaMemcpyPeer does; without it copies between GPUs are staged through the host.
  Status EnablePeerAccess(int peer_device) {
    CUdevice self = 0, peer = 0;
    CUcontext peer_context = nullptr;
    int can = 0;
    WS_RETURN_IF_ERROR(Check(api_, api_->device_get(&peer, peer_device), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(Check(api_, api_->device_get(&self, 0), "cuDeviceGet"));
    WS_RETURN_IF_ERROR(Check(api_, api_->device_can_access_peer(&can, self, peer),
                             "cuDeviceCanAccessPeer"));
    if (!can) return Unavailable("GPU 0 cannot access GPU ", peer_device, " directly");
    WS_RETURN_IF_ERROR(Check(api_, api_->primary_ctx_retain(&peer_context, peer),
                             "cuDevicePrimaryCtxRetain"));
    CUresult result = api_->ctx_enable_peer_access(peer_context, 0);
    if (result == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) return Status::Ok();
    return Check(api_, result, "cuCtxEnablePeerAccess");
  }

  void* data() const { return reinterpret_cast<void*>(ptr_); }
  uint64_t size() const { return size_; }
  Status Upload(std::span<const uint8_t> host) {
    return Check(api_, api_->memcpy_htod(ptr_, host.data(), host.size()), "cuMemcpyHtoD");
  }
  Status Download(std::span<uint8_t> host) const {
    return Check(api_, api_->memcpy_dtoh(host.data(), ptr_, host.size()), "cuMemcpyDtoH");
  }

 private:
  static Status Check(const CudaApi* api, CUresult result, const char* what) {
    if (result == CUDA_SUCCESS) return Status::Ok();
    return Unavailable(what, ": ", api->ErrorText(result));
  }
  const CudaApi* api_ = nullptr;
  CUdeviceptr ptr_ = 0;
  uint64_t size_ = 0;
};

}  // namespace weightsync::transport::testing
