// Factory of the `cuda_ipc` backend (same-host GPU -> GPU over NVLink; libcuda loaded at run
// time). See cuda_ipc_transport_impl.cc.
#pragma once

#include <memory>

#include "transport/transport_base.h"

namespace weightsync::transport {

// kUnavailable ("unavailable: <reason>") without libcuda.so.1 or without a GPU.
Result<std::unique_ptr<Transport>> CreateCudaIpcTransport(const TransportOptions& options);

// GPUs the driver sees; 0 without a driver or GPU (benchmarks pick a peer GPU with it).
int CudaDeviceCount();

// The baseline cuda_ipc is measured against: `iters` copies of `bytes` by this one process from a
// buffer on GPU `src_device` to one on GPU `dst_device` (peer access enabled when they differ, as
// cudaMemcpyPeer does), after one untimed copy. Returns bytes/s / 1e9. kUnavailable without a GPU.
Result<double> MeasureDeviceCopyGbps(int src_device, int dst_device, uint64_t bytes, int iters);

}  // namespace weightsync::transport
