// FP8 block quantization and dtype casts on an NVIDIA GPU, bit-exact with ConvertReference
// (docs/conversion-numerics.md, "CUDA path").
//
// The jobs are ConvertJob values whose src, dst and scales are DEVICE pointers on the current
// CUDA device; every job of one call is converted by a single kernel launch over a device-side
// work list. This header needs no CUDA headers: in a build without nvcc the functions exist and
// return kUnavailable ("built without CUDA"), so callers never need #ifdefs.
//
// Threading: a CudaConverter is used by one thread at a time. ConvertOnDevice is thread-safe.
#pragma once

#include <memory>
#include <span>

#include "convert/block_quantize.h"
#include "weightsync/status.h"

// The CUDA runtime's and driver's stream handle (cudaStream_t == CUstream == CUstream_st*),
// declared here so this header does not include cuda_runtime.h. nullptr is the default stream.
struct CUstream_st;

namespace weightsync {

using CudaStream = ::CUstream_st*;

// OK when this build has the kernels and a CUDA device is visible; kUnavailable otherwise, with
// the reason ("built without CUDA", "no CUDA device", the driver's error).
Status CudaConversionAvailable();

// Converts batches of jobs on the GPU, keeping its device work list and error words between
// calls. One batch may be in flight at a time: Enqueue, then Finish, then Enqueue again.
class CudaConverter {
 public:
  CudaConverter();
  ~CudaConverter();
  CudaConverter(const CudaConverter&) = delete;
  CudaConverter& operator=(const CudaConverter&) = delete;

  // Validates every job exactly as ConvertReference does (malformed jobs are kInvalidArgument and
  // nothing is launched), uploads the work list and launches one kernel on `stream`. Returns
  // without waiting for the GPU. The jobs' strings are copied; the device memory must stay valid
  // until Finish returns.
  Status Enqueue(std::span<const ConvertJob> jobs, CudaStream stream);

  // Waits for the batch and returns its Status: OK, or for the first job (in the order given)
  // holding a refused value (NaN, Inf, fp32 overflowing bf16), the same kInvalidArgument message
  // ConvertReference gives. After an error the destinations and scales of the batch are
  // undefined (partly written), as with ConvertFast: convert into staging memory.
  Status Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Enqueue + Finish on a temporary converter: convenient, but allocates each call.
Status ConvertOnDevice(std::span<const ConvertJob> jobs, CudaStream stream);

}  // namespace weightsync
