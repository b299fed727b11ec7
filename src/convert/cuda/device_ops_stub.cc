// device_ops.h in a build without nvcc: every call reports kUnavailable.
#include "convert/cuda/device_ops.h"

namespace weightsync {
namespace {
Status NoCuda() { return Unavailable("CUDA device memory: built without CUDA"); }
}  // namespace

Status SetCudaDevice(int) { return NoCuda(); }
Result<int> CudaDeviceCount() { return NoCuda(); }
Result<void*> DeviceAlloc(size_t) { return NoCuda(); }
void DeviceFree(void*) {}
Status CopyHostToDevice(void*, const void*, size_t) { return NoCuda(); }
Status CopyDeviceToHost(void*, const void*, size_t) { return NoCuda(); }
Status CopyDevice2DAsync(void*, size_t, const void*, size_t, size_t, size_t, CudaStream) {
  return NoCuda();
}
Result<CudaStream> CreateCudaStream() { return NoCuda(); }
void DestroyCudaStream(CudaStream) {}
Status SynchronizeCudaStream(CudaStream) { return NoCuda(); }
Result<bool> CudaStreamDone(CudaStream) { return NoCuda(); }
Result<double> TimePeerCopies(int, const std::vector<std::pair<int, size_t>>&, int) {
  return NoCuda();
}
Result<std::vector<int64_t>> FirstNonFiniteOnDevice(const std::vector<DeviceElements>&,
                                                    CudaStream) {
  return NoCuda();
}

}  // namespace weightsync
