#include "transport/cuda_api.h"

#include <dlfcn.h>

#include <memory>
#include <mutex>

namespace weightsync::transport {
namespace {

template <typename Fn>
Status Bind(void* handle, const char* symbol, Fn& out) {
  void* p = dlsym(handle, symbol);
  if (p == nullptr) return Unavailable("unavailable: libcuda lacks ", symbol, " (driver too old?)");
  out = reinterpret_cast<Fn>(p);
  return Status::Ok();
}

Result<CudaApi*> Load() {
  void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return Unavailable("unavailable: ", err ? err : "libcuda.so.1 not found");
  }
  auto api = std::make_unique<CudaApi>();
  WS_RETURN_IF_ERROR(Bind(handle, "cuInit", api->init));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDriverGetVersion", api->driver_get_version));
  WS_RETURN_IF_ERROR(Bind(handle, "cuGetErrorString", api->get_error_string));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDeviceGet", api->device_get));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDeviceGetCount", api->device_get_count));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDeviceGetPCIBusId", api->device_get_pci_bus_id));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDevicePrimaryCtxRetain", api->primary_ctx_retain));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDevicePrimaryCtxRelease_v2", api->primary_ctx_release));
  WS_RETURN_IF_ERROR(Bind(handle, "cuCtxSetCurrent", api->ctx_set_current));
  WS_RETURN_IF_ERROR(Bind(handle, "cuCtxEnablePeerAccess", api->ctx_enable_peer_access));
  WS_RETURN_IF_ERROR(Bind(handle, "cuDeviceCanAccessPeer", api->device_can_access_peer));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemAlloc_v2", api->mem_alloc));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemFree_v2", api->mem_free));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemHostAlloc", api->mem_host_alloc));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemFreeHost", api->mem_free_host));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemGetAddressRange_v2", api->mem_get_address_range));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemcpyDtoDAsync_v2", api->memcpy_dtod_async));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemcpyHtoD_v2", api->memcpy_htod));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemcpyDtoH_v2", api->memcpy_dtoh));
  WS_RETURN_IF_ERROR(Bind(handle, "cuStreamCreate", api->stream_create));
  WS_RETURN_IF_ERROR(Bind(handle, "cuStreamDestroy_v2", api->stream_destroy));
  WS_RETURN_IF_ERROR(Bind(handle, "cuStreamSynchronize", api->stream_synchronize));
  WS_RETURN_IF_ERROR(Bind(handle, "cuEventCreate", api->event_create));
  WS_RETURN_IF_ERROR(Bind(handle, "cuEventDestroy_v2", api->event_destroy));
  WS_RETURN_IF_ERROR(Bind(handle, "cuEventRecord", api->event_record));
  WS_RETURN_IF_ERROR(Bind(handle, "cuEventQuery", api->event_query));
  WS_RETURN_IF_ERROR(Bind(handle, "cuIpcGetMemHandle", api->ipc_get_mem_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuIpcOpenMemHandle_v2", api->ipc_open_mem_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuIpcCloseMemHandle", api->ipc_close_mem_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemRetainAllocationHandle", api->mem_retain_allocation_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemGetAllocationPropertiesFromHandle",
                          api->mem_get_allocation_properties));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemExportToShareableHandle",
                          api->mem_export_to_shareable_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemImportFromShareableHandle",
                          api->mem_import_from_shareable_handle));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemAddressReserve", api->mem_address_reserve));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemAddressFree", api->mem_address_free));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemMap", api->mem_map));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemUnmap", api->mem_unmap));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemSetAccess", api->mem_set_access));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemRelease", api->mem_release));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemCreate", api->mem_create));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemGetAllocationGranularity",
                          api->mem_get_allocation_granularity));
  WS_RETURN_IF_ERROR(Bind(handle, "cuMemcpyHtoDAsync_v2", api->memcpy_htod_async));
  WS_RETURN_IF_ERROR(Bind(handle, "cuModuleLoadData", api->module_load_data));
  WS_RETURN_IF_ERROR(Bind(handle, "cuModuleGetFunction", api->module_get_function));
  WS_RETURN_IF_ERROR(Bind(handle, "cuModuleUnload", api->module_unload));
  WS_RETURN_IF_ERROR(Bind(handle, "cuLaunchKernel", api->launch_kernel));
  const CUresult r = api->init(0);
  if (r != CUDA_SUCCESS) return Unavailable("unavailable: cuInit: ", api->ErrorText(r));
  api->driver_get_version(&api->driver_version);
  return api.release();
}

}  // namespace

std::string CudaApi::ErrorText(CUresult result) const {
  const char* text = nullptr;
  if (get_error_string == nullptr || get_error_string(result, &text) != CUDA_SUCCESS) text = "?";
  return StrCat("CUDA error ", static_cast<int>(result), ": ", text);
}

Result<const CudaApi*> LoadCudaApi() {
  static std::once_flag once;
  static Result<CudaApi*>* loaded = nullptr;
  std::call_once(once, [] { loaded = new Result<CudaApi*>(Load()); });
  if (!loaded->ok()) return loaded->status();
  return static_cast<const CudaApi*>(loaded->value());
}

}  // namespace weightsync::transport
