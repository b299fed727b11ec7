// The CUDA driver functions weightsync calls, loaded from libcuda.so.1 at run time (NCCL's
// cudawrap pattern): the library never links libcuda or libcudart, so one build runs on machines
// with and without GPUs. Types come from the toolkit's cuda.h at build time (headers only); the
// symbol names are the versioned ones cuda.h maps to (cuMemAlloc -> cuMemAlloc_v2).
//
// Threading: LoadCudaApi() is thread-safe (loaded once); the table is immutable afterwards.
#pragma once

#include <cuda.h>

#include <string>

#include "weightsync/status.h"

namespace weightsync::transport {

struct CudaApi {
  int driver_version = 0;
  decltype(&::cuInit) init;
  decltype(&::cuDriverGetVersion) driver_get_version;
  decltype(&::cuGetErrorString) get_error_string;
  decltype(&::cuDeviceGet) device_get;
  decltype(&::cuDeviceGetCount) device_get_count;
  decltype(&::cuDeviceGetPCIBusId) device_get_pci_bus_id;
  decltype(&::cuDevicePrimaryCtxRetain) primary_ctx_retain;
  decltype(&::cuDevicePrimaryCtxRelease) primary_ctx_release;
  decltype(&::cuCtxSetCurrent) ctx_set_current;
  decltype(&::cuCtxEnablePeerAccess) ctx_enable_peer_access;
  decltype(&::cuDeviceCanAccessPeer) device_can_access_peer;
  decltype(&::cuMemAlloc) mem_alloc;
  decltype(&::cuMemFree) mem_free;
  decltype(&::cuMemHostAlloc) mem_host_alloc;
  decltype(&::cuMemFreeHost) mem_free_host;
  decltype(&::cuMemGetAddressRange) mem_get_address_range;
  decltype(&::cuMemcpyDtoDAsync) memcpy_dtod_async;
  decltype(&::cuMemcpyHtoD) memcpy_htod;
  decltype(&::cuMemcpyDtoH) memcpy_dtoh;
  decltype(&::cuStreamCreate) stream_create;
  decltype(&::cuStreamDestroy) stream_destroy;
  decltype(&::cuStreamSynchronize) stream_synchronize;
  decltype(&::cuEventCreate) event_create;
  decltype(&::cuEventDestroy) event_destroy;
  decltype(&::cuEventRecord) event_record;
  decltype(&::cuEventQuery) event_query;
  decltype(&::cuIpcGetMemHandle) ipc_get_mem_handle;
  decltype(&::cuIpcOpenMemHandle) ipc_open_mem_handle;
  decltype(&::cuIpcCloseMemHandle) ipc_close_mem_handle;
  decltype(&::cuMemRetainAllocationHandle) mem_retain_allocation_handle;
  decltype(&::cuMemGetAllocationPropertiesFromHandle) mem_get_allocation_properties;
  decltype(&::cuMemExportToShareableHandle) mem_export_to_shareable_handle;
  decltype(&::cuMemImportFromShareableHandle) mem_import_from_shareable_handle;
  decltype(&::cuMemAddressReserve) mem_address_reserve;
  decltype(&::cuMemAddressFree) mem_address_free;
  decltype(&::cuMemMap) mem_map;
  decltype(&::cuMemUnmap) mem_unmap;
  decltype(&::cuMemSetAccess) mem_set_access;
  decltype(&::cuMemRelease) mem_release;
  decltype(&::cuMemCreate) mem_create;  // tests build PyTorch-like expandable segments with it
  decltype(&::cuMemGetAllocationGranularity) mem_get_allocation_granularity;
  // The batched small-copy kernel (batched_copy.h): device code loaded from embedded bytes.
  decltype(&::cuMemcpyHtoDAsync) memcpy_htod_async;
  decltype(&::cuModuleLoadData) module_load_data;
  decltype(&::cuModuleGetFunction) module_get_function;
  decltype(&::cuModuleUnload) module_unload;
  decltype(&::cuLaunchKernel) launch_kernel;

  // "CUDA_ERROR_INVALID_VALUE (1): invalid argument" for messages.
  std::string ErrorText(CUresult result) const;
};

// kUnavailable ("unavailable: libcuda.so.1: cannot open ...") when the driver is missing.
Result<const CudaApi*> LoadCudaApi();

}  // namespace weightsync::transport
