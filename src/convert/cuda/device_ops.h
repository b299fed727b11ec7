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

// FirstNonFinite (convert/finite_check.h) for `count` contiguous device elements: the index of
// the first NaN/Inf, or -1. Waits for the answer.
Result<int64_t> FirstNonFiniteOnDevice(const void* data, DType dtype, int64_t count,
                                       CudaStream stream);

}  // namespace weightsync
