// Built instead of cuda_ipc_transport_impl.cc when the CUDA toolkit headers (cuda.h) were missing.
#include "transport/cuda_ipc_transport.h"

namespace weightsync::transport {

Result<std::unique_ptr<Transport>> CreateCudaIpcTransport(const TransportOptions&) {
  return Unavailable("unavailable: built without CUDA headers (cuda.h)");
}

}  // namespace weightsync::transport

namespace weightsync::transport {

Result<double> MeasureDeviceCopyGbps(int, int, uint64_t, int) {
  return Unavailable("unavailable: built without CUDA headers (cuda.h)");
}

}  // namespace weightsync::transport

namespace weightsync::transport {

int CudaDeviceCount() { return 0; }

}  // namespace weightsync::transport
