// The device-memory operations the push agents need around the conversion kernels, on the same
// CUDA runtime (statically linked, driver loaded on first use): choose a device, allocate, copy,
// 2D strided copies on a stream, and the NaN/Inf scan of weights held on a GPU.
//
// Like convert_cuda.h, this header needs no CUDA headers, and in a build without nvcc every call
// returns kUnavailable.
//
// Threading: the CUDA runtime's device is per thread: call SetCudaDevice on every thread that
// uses these functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "convert/cuda/convert_cuda.h"
#include "weightsync/dtype.h"

namespace weightsync {

Status SetCudaDevice(int device);
// CUDA devices visible to this process (kUnavailable without a driver or a build with CUDA).
Result<int> CudaDeviceCount();
// cudaMalloc memory (never the caching allocator's, never VMM): what IPC and RDMA can share.
Result<void*> DeviceAlloc(size_t bytes);
void DeviceFree(void* pointer);
Status CopyHostToDevice(void* dst, const void* src, size_t bytes);
Status CopyDeviceToHost(void* dst, const void* src, size_t bytes);
// height rows of width bytes, on `stream` (device to device; not waited for).
Status CopyDevice2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t width, size_t height, CudaStream stream);
Result<CudaStream> CreateCudaStream();
void DestroyCudaStream(CudaStream stream);
Status SynchronizeCudaStream(CudaStream stream);
// True once everything queued on `stream` finished (never waits); an error the stream hit.
Result<bool> CudaStreamDone(CudaStream stream);

// The speed-of-light reference of a push: copies of `bytes` from GPU `source` to each target
// GPU, all started together (one stream each, peer access enabled), timed with events; seconds
// of the slowest, averaged over `iterations` after one warm-up. Buffers are allocated and freed.
Result<double> TimePeerCopies(int source, const std::vector<std::pair<int, size_t>>& targets,
                              int iterations);

// FirstNonFinite (convert/finite_check.h) for many tensors of contiguous device elements at
// once (one small kernel each, one wait): per tensor, the index of its first NaN/Inf, or -1.
struct DeviceElements {
  const void* data = nullptr;
  DType dtype = DType::kBF16;
  int64_t count = 0;
};
Result<std::vector<int64_t>> FirstNonFiniteOnDevice(const std::vector<DeviceElements>& tensors,
                                                    CudaStream stream);

}  // namespace weightsync
