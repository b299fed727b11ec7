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

Result<double> TimePeerCopies(int source, const std::vector<std::pair<int, size_t>>& targets,
                              int iterations) {
  struct Copy {
    int device;
    size_t bytes;
    void* src = nullptr;
    void* dst = nullptr;
    cudaStream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
  };
  std::vector<Copy> copies;
  for (const auto& [device, bytes] : targets) copies.push_back({device, bytes});
  Status status;
  const auto check = [&](cudaError_t e, const char* what) {
    if (status.ok() && e != cudaSuccess) status = Check(e, what);
  };
  for (Copy& c : copies) {
    check(cudaSetDevice(c.device), "cudaSetDevice");
    check(cudaMalloc(&c.dst, c.bytes), "cudaMalloc (peer copy target)");
    check(cudaSetDevice(source), "cudaSetDevice");
    if (c.device != source) {
      const cudaError_t peer = cudaDeviceEnablePeerAccess(c.device, 0);
      if (peer != cudaErrorPeerAccessAlreadyEnabled) check(peer, "cudaDeviceEnablePeerAccess");
      cudaGetLastError();  // clear "already enabled"
    }
    check(cudaMalloc(&c.src, c.bytes), "cudaMalloc (peer copy source)");
    check(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaEventCreate(&c.start), "cudaEventCreate");
    check(cudaEventCreate(&c.stop), "cudaEventCreate");
  }
  double total = 0;
  for (int i = 0; status.ok() && i <= iterations; ++i) {
    for (Copy& c : copies) {
      check(cudaEventRecord(c.start, c.stream), "cudaEventRecord");
      check(cudaMemcpyPeerAsync(c.dst, c.device, c.src, source, c.bytes, c.stream),
            "cudaMemcpyPeerAsync");
      check(cudaEventRecord(c.stop, c.stream), "cudaEventRecord");
    }
    float slowest = 0;
    for (Copy& c : copies) {
      check(cudaEventSynchronize(c.stop), "cudaEventSynchronize");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, c.start, c.stop), "cudaEventElapsedTime");
      slowest = std::max(slowest, ms);
    }
    if (i > 0) total += slowest / 1e3;  // the first round warms up
  }
  for (Copy& c : copies) {
    cudaFree(c.src);
    cudaFree(c.dst);
    if (c.stream) cudaStreamDestroy(c.stream);
    if (c.start) cudaEventDestroy(c.start);
    if (c.stop) cudaEventDestroy(c.stop);
  }
  WS_RETURN_IF_ERROR(status);
  return total / std::max(iterations, 1);
}

Result<std::vector<int64_t>> FirstNonFiniteOnDevice(const std::vector<DeviceElements>& tensors,
                                                    CudaStream stream) {
  std::vector<int64_t> out(tensors.size(), -1);
  if (tensors.empty()) return out;
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  unsigned long long* first = nullptr;
  const size_t bytes = tensors.size() * sizeof *first;
  WS_RETURN_IF_ERROR(
      Check(cudaMallocAsync(reinterpret_cast<void**>(&first), bytes, s), "cudaMallocAsync"));
  Status status = Check(cudaMemsetAsync(first, 0xff, bytes, s), "cudaMemsetAsync");
  for (size_t t = 0; status.ok() && t < tensors.size(); ++t) {
    const DeviceElements& e = tensors[t];
    if (e.count <= 0) continue;
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((e.count + threads - 1) / threads, 4096));
    switch (e.dtype) {
      case DType::kBF16:
        FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint16_t*>(e.data),
                                                        e.count, uint16_t{0x7f80}, first + t);
        break;
      case DType::kF16:
        FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint16_t*>(e.data),
                                                        e.count, uint16_t{0x7c00}, first + t);
        break;
      case DType::kF32:
        FirstNonFiniteKernel<<<blocks, threads, 0, s>>>(static_cast<const uint32_t*>(e.data),
                                                        e.count, 0x7f800000u, first + t);
        break;
      default:
        break;  // no NaN to find
    }
    status = Check(cudaGetLastError(), "the NaN/Inf scan kernel");
  }
  std::vector<unsigned long long> host(tensors.size());
  if (status.ok()) {
    status = Check(cudaMemcpyAsync(host.data(), first, bytes, cudaMemcpyDeviceToHost, s),
                   "cudaMemcpyAsync");
  }
  cudaFreeAsync(first, s);
  if (status.ok()) status = Check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  WS_RETURN_IF_ERROR(status);
  for (size_t t = 0; t < tensors.size(); ++t) {
    out[t] = host[t] == ~0ull ? -1 : static_cast<int64_t>(host[t]);
  }
  return out;
}

}  // namespace weightsync
