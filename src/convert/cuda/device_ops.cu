#include <cuda_runtime.h>

#include "convert/cuda/device_ops.h"

namespace weightsync {
namespace {

Status Check(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::Ok();
  return Unavailable(what, ": ", cudaGetErrorString(error));
}

// Lowest index whose exponent bits are all ones; grid-stride, one atomicMin per thread.
template <typename Bits>
__global__ void FirstNonFiniteKernel(const Bits* data, int64_t count, Bits exponent,
                                     unsigned long long* first) {
  unsigned long long mine = ~0ull;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    if ((data[i] & exponent) == exponent) {
      mine = static_cast<unsigned long long>(i);
      break;  // later indices of this thread are larger
    }
  }
  if (mine != ~0ull) atomicMin(first, mine);
}

}  // namespace

Status SetCudaDevice(int device) { return Check(cudaSetDevice(device), "cudaSetDevice"); }

Result<int> CudaDeviceCount() {
  int count = 0;
  WS_RETURN_IF_ERROR(Check(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  return count;
}

Result<void*> DeviceAlloc(size_t bytes) {
  void* pointer = nullptr;
  WS_RETURN_IF_ERROR(Check(cudaMalloc(&pointer, bytes ? bytes : 1), "cudaMalloc"));
  return pointer;
}

void DeviceFree(void* pointer) {
  if (pointer) cudaFree(pointer);
}

Status CopyHostToDevice(void* dst, const void* src, size_t bytes) {
  return Check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
}

Status CopyDeviceToHost(void* dst, const void* src, size_t bytes) {
  return Check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
}

Status CopyDevice2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t width, size_t height, CudaStream stream) {
  if (width == 0 || height == 0) return Status::Ok();
  return Check(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, height,
                                 cudaMemcpyDeviceToDevice, reinterpret_cast<cudaStream_t>(stream)),
               "cudaMemcpy2DAsync");
}

Result<CudaStream> CreateCudaStream() {
  cudaStream_t stream = nullptr;
  WS_RETURN_IF_ERROR(
      Check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  return reinterpret_cast<CudaStream>(stream);
}

void DestroyCudaStream(CudaStream stream) {
  if (stream) cudaStreamDestroy(reinterpret_cast<cudaStream_t>(stream));
}

Status SynchronizeCudaStream(CudaStream stream) {
  return Check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)),
               "cudaStreamSynchronize");
}

Result<int64_t> FirstNonFiniteOnDevice(const void* data, DType dtype, int64_t count,
                                       CudaStream stream) {
  if (count <= 0) return int64_t{-1};
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  unsigned long long* first = nullptr;
  WS_RETURN_IF_ERROR(Check(cudaMallocAsync(reinterpret_cast<void**>(&first), sizeof *first, s),
                           "cudaMallocAsync"));
  WS_RETURN_IF_ERROR(Check(cudaMemsetAsync(first, 0xff, sizeof *first, s), "cudaMemsetAsync"));
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((count + threads - 1) / threads, 4096));
  switch (dtype) {
    case DType::kBF16:
      FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint16_t*>(data), count,
                                                      uint16_t{0x7f80}, first);
      break;
    case DType::kF16:
      FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint16_t*>(data), count,
                                                      uint16_t{0x7c00}, first);
      break;
    case DType::kF32:
      FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint32_t*>(data), count,
                                                      0x7f800000u, first);
      break;
    default:
      cudaFreeAsync(first, s);
      return int64_t{-1};
  }
  unsigned long long host = 0;
  Status status = Check(cudaGetLastError(), "the NaN/Inf scan kernel");
  if (status.ok()) {
    status = Check(cudaMemcpyAsync(&host, first, sizeof host, cudaMemcpyDeviceToHost, s),
                   "cudaMemcpyAsync");
  }
  cudaFreeAsync(first, s);
  if (status.ok()) status = Check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  WS_RETURN_IF_ERROR(status);
  return host == ~0ull ? int64_t{-1} : static_cast<int64_t>(host);
}

}  // namespace weightsync
