// MeasureDeviceCopyGbps: the in-process device-to-device copy that cuda_ipc throughput is compared
// with (what cudaMemcpyPeer does), measured by the same program in the same run so clocks, NVLink
// state and load are the same for both numbers.
#include <chrono>

#include "transport/cuda_api.h"
#include "transport/cuda_ipc_transport.h"

namespace weightsync::transport {
namespace {

// Device memory on one GPU, freed in that GPU's primary context before the context is released.
struct Allocation {
  const CudaApi* api = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUdeviceptr ptr = 0;
  ~Allocation() {
    if (context == nullptr) return;
    api->ctx_set_current(context);
    if (ptr) api->mem_free(ptr);
    api->primary_ctx_release(device);
  }
};

}  // namespace

int CudaDeviceCount() {
  auto api = LoadCudaApi();
  int count = 0;
  if (!api.ok() || (*api)->device_get_count(&count) != CUDA_SUCCESS) return 0;
  return count;
}

Result<double> MeasureDeviceCopyGbps(int src_device, int dst_device, uint64_t bytes, int iters) {
  WS_ASSIGN_OR_RETURN(const CudaApi* api, LoadCudaApi());
  auto check = [api](CUresult r, std::string_view what) -> Status {
    if (r == CUDA_SUCCESS) return Status::Ok();
    return Unavailable("device copy baseline: ", what, ": ", api->ErrorText(r));
  };
  Allocation src{api}, dst{api};
  WS_RETURN_IF_ERROR(check(api->device_get(&src.device, src_device), "cuDeviceGet (source)"));
  WS_RETURN_IF_ERROR(check(api->device_get(&dst.device, dst_device), "cuDeviceGet (destination)"));
  WS_RETURN_IF_ERROR(check(api->primary_ctx_retain(&dst.context, dst.device), "cuDevicePrimaryCtxRetain"));
  WS_RETURN_IF_ERROR(check(api->ctx_set_current(dst.context), "cuCtxSetCurrent"));
  WS_RETURN_IF_ERROR(check(api->mem_alloc(&dst.ptr, bytes), "cuMemAlloc (destination)"));
  WS_RETURN_IF_ERROR(check(api->primary_ctx_retain(&src.context, src.device), "cuDevicePrimaryCtxRetain"));
  WS_RETURN_IF_ERROR(check(api->ctx_set_current(src.context), "cuCtxSetCurrent"));
  WS_RETURN_IF_ERROR(check(api->mem_alloc(&src.ptr, bytes), "cuMemAlloc (source)"));
  if (src_device != dst_device) {
    // Without peer access the driver stages copies between GPUs through host memory.
    const CUresult r = api->ctx_enable_peer_access(dst.context, 0);
    if (r != CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) {
      WS_RETURN_IF_ERROR(check(r, "cuCtxEnablePeerAccess"));
    }
  }
  CUstream stream = nullptr;
  WS_RETURN_IF_ERROR(check(api->stream_create(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate"));
  auto copy = [&](int n) -> Status {
    for (int i = 0; i < n; ++i) {
      WS_RETURN_IF_ERROR(check(api->memcpy_dtod_async(dst.ptr, src.ptr, bytes, stream),
                               "cuMemcpyDtoDAsync"));
    }
    return check(api->stream_synchronize(stream), "cuStreamSynchronize");
  };
  Status status = copy(1);
  const auto start = std::chrono::steady_clock::now();
  if (status.ok()) status = copy(iters);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  api->stream_destroy(stream);
  WS_RETURN_IF_ERROR(status);
  return static_cast<double>(bytes) * iters / seconds / 1e9;
}

}  // namespace weightsync::transport
