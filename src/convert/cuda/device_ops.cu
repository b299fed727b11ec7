#include <cuda_runtime.h>

#include "convert/cuda/device_ops.h"

namespace weightsync {
namespace {

Status Check(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::Ok();
  return Unavailable(what, ": ", cudaGetErrorString(error));
}

// The NaN/Inf scan runs as one launch over a work list of chunks (thousands of expert tensors
// would otherwise cost a launch each): block b scans chunk b with 16-byte loads when the chunk is
// aligned, and records the lowest bad index of its tensor with atomicMin.
struct ScanChunk {
  const void* data;       // the chunk's first element
  int64_t first_element;  // its index in the tensor
  int64_t count;          // elements in the chunk
  uint32_t exponent;      // the all-ones exponent mask of the dtype
  uint32_t element_bytes;  // 2 or 4
  uint32_t tensor;
};
constexpr int64_t kScanChunkElements = int64_t{1} << 18;

__device__ __forceinline__ bool IsNonFinite(uint32_t bits, uint32_t exponent) {
  return (bits & exponent) == exponent;
}

// Whether any element packed in `word` (two 16-bit or one 32-bit) has an all-ones exponent.
__device__ __forceinline__ bool AnyNonFinite(uint32_t word, uint32_t exponent, int element_bytes) {
  if (element_bytes == 4) return IsNonFinite(word, exponent);
  return IsNonFinite(word & 0xffffu, exponent) || IsNonFinite(word >> 16, exponent);
}

__device__ __forceinline__ bool AnyNonFinite(const uint4& x, uint32_t exponent, int element_bytes) {
  return AnyNonFinite(x.x, exponent, element_bytes) || AnyNonFinite(x.y, exponent, element_bytes) ||
         AnyNonFinite(x.z, exponent, element_bytes) || AnyNonFinite(x.w, exponent, element_bytes);
}

// The first bad element of the 16-byte vector `x` (index of its first element: `base`), or ~0.
__device__ __forceinline__ unsigned long long FirstIn(const uint4& x, int64_t base,
                                                     uint32_t exponent, int element_bytes) {
  const uint32_t words[4] = {x.x, x.y, x.z, x.w};
  for (int w = 0; w < 4; ++w) {
    if (element_bytes == 4) {
      if (IsNonFinite(words[w], exponent)) return base + w;
    } else if (IsNonFinite(words[w] & 0xffffu, exponent)) {
      return base + 2 * w;
    } else if (IsNonFinite(words[w] >> 16, exponent)) {
      return base + 2 * w + 1;
    }
  }
  return ~0ull;
}

// Each thread loads kScanUnroll vectors per step before testing any (the loads are independent,
// so enough bytes are in flight to keep HBM busy); only a step that holds a bad element is
// searched element by element, in index order, so a thread's first hit is its lowest index.
constexpr int kScanUnroll = 4;

__global__ void ScanKernel(const ScanChunk* chunks, unsigned long long* first) {
  const ScanChunk c = chunks[blockIdx.x];
  const int element_bytes = static_cast<int>(c.element_bytes);
  unsigned long long mine = ~0ull;
  const int per_vector = 16 / element_bytes;
  const bool aligned = (reinterpret_cast<uintptr_t>(c.data) & 15) == 0;
  const int64_t vectors = aligned ? c.count / per_vector : 0;
  const uint4* v = static_cast<const uint4*>(c.data);
  const int64_t stride = blockDim.x;
  for (int64_t i = threadIdx.x; i < vectors && mine == ~0ull; i += stride * kScanUnroll) {
    uint4 x[kScanUnroll];
    bool any = false;
#pragma unroll
    for (int u = 0; u < kScanUnroll; ++u) {
      const int64_t at = i + u * stride;
      x[u] = at < vectors ? v[at] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kScanUnroll; ++u) any |= AnyNonFinite(x[u], c.exponent, element_bytes);
    if (!any) continue;
    for (int u = 0; u < kScanUnroll && mine == ~0ull; ++u) {
      mine = FirstIn(x[u], (i + u * stride) * per_vector, c.exponent, element_bytes);
    }
  }
  // The tail (or an unaligned chunk), element by element.
  for (int64_t i = vectors * per_vector + threadIdx.x; i < c.count && mine == ~0ull;
       i += blockDim.x) {
    const uint32_t bits = element_bytes == 4 ? static_cast<const uint32_t*>(c.data)[i]
                                             : static_cast<const uint16_t*>(c.data)[i];
    if (IsNonFinite(bits, c.exponent)) mine = i;
  }
  if (mine != ~0ull) atomicMin(first + c.tensor, c.first_element + mine);
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

Result<bool> CudaStreamDone(CudaStream stream) {
  const cudaError_t e = cudaStreamQuery(reinterpret_cast<cudaStream_t>(stream));
  if (e == cudaErrorNotReady) return false;
  WS_RETURN_IF_ERROR(Check(e, "cudaStreamQuery"));
  return true;
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
  std::vector<ScanChunk> chunks;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const DeviceElements& e = tensors[t];
    uint32_t exponent = 0, bytes = 0;
    switch (e.dtype) {
      case DType::kBF16: exponent = 0x7f80, bytes = 2; break;
      case DType::kF16: exponent = 0x7c00, bytes = 2; break;
      case DType::kF32: exponent = 0x7f800000u, bytes = 4; break;
      default: continue;  // no NaN to find
    }
    for (int64_t first = 0; first < e.count; first += kScanChunkElements) {
      chunks.push_back({static_cast<const char*>(e.data) + first * bytes, first,
                        std::min(kScanChunkElements, e.count - first), exponent, bytes,
                        static_cast<uint32_t>(t)});
    }
  }
  if (chunks.empty()) return out;
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  const size_t result_bytes = tensors.size() * sizeof(unsigned long long);
  const size_t chunk_bytes = chunks.size() * sizeof(ScanChunk);
  char* device = nullptr;  // results, then the work list
  WS_RETURN_IF_ERROR(Check(cudaMallocAsync(reinterpret_cast<void**>(&device),
                                           result_bytes + chunk_bytes, s),
                           "cudaMallocAsync"));
  auto* first = reinterpret_cast<unsigned long long*>(device);
  auto* list = reinterpret_cast<ScanChunk*>(device + result_bytes);
  Status status = Check(cudaMemsetAsync(first, 0xff, result_bytes, s), "cudaMemsetAsync");
  if (status.ok()) {
    status = Check(cudaMemcpyAsync(list, chunks.data(), chunk_bytes, cudaMemcpyHostToDevice, s),
                   "cudaMemcpyAsync");
  }
  // One block per chunk; the grid's x dimension takes 2^31 - 1 blocks.
  if (status.ok()) {
    ScanKernel<<<static_cast<unsigned>(chunks.size()), 256, 0, s>>>(list, first);
    status = Check(cudaGetLastError(), "the NaN/Inf scan kernel");
  }
  std::vector<unsigned long long> host(tensors.size());
  if (status.ok()) {
    status = Check(cudaMemcpyAsync(host.data(), first, result_bytes, cudaMemcpyDeviceToHost, s),
                   "cudaMemcpyAsync");
  }
  cudaFreeAsync(device, s);
  if (status.ok()) status = Check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  WS_RETURN_IF_ERROR(status);
  for (size_t t = 0; t < tensors.size(); ++t) {
    out[t] = host[t] == ~0ull ? -1 : static_cast<int64_t>(host[t]);
  }
  return out;
}

}  // namespace weightsync
