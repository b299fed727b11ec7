#include <cuda_runtime.h>

#include "demo/demo_pattern.h"
#include "demo/demo_pattern_cuda.h"

namespace weightsync::demo {
namespace {

template <bool kBF16>
__global__ void FillKernel(void* data, int64_t count, int64_t first, int64_t cols, uint64_t hash,
                           uint64_t step) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const float value = pattern::Value(hash, step, first + i, cols);
    if (kBF16) {
      static_cast<uint16_t*>(data)[i] = pattern::ToBF16(value);
    } else {
      static_cast<float*>(data)[i] = value;
    }
  }
}

}  // namespace

Status FillPatternOnDevice(void* data, DType dtype, int64_t count, int64_t first_element,
                           int64_t cols, uint64_t tensor_hash, uint64_t step) {
  if (count <= 0) return Status::Ok();
  if (dtype != DType::kBF16 && dtype != DType::kF32) {
    return InvalidArgument("demo weights: ", DTypeTorchName(dtype), " is not generated");
  }
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((count + threads - 1) / threads, 8192));
  if (dtype == DType::kBF16) {
    FillKernel<true><<<blocks, threads>>>(data, count, first_element, cols, tensor_hash, step);
  } else {
    FillKernel<false><<<blocks, threads>>>(data, count, first_element, cols, tensor_hash, step);
  }
  cudaError_t error = cudaGetLastError();
  if (error == cudaSuccess) error = cudaDeviceSynchronize();
  if (error != cudaSuccess) return Unavailable("demo weights on the GPU: ", cudaGetErrorString(error));
  return Status::Ok();
}

}  // namespace weightsync::demo
