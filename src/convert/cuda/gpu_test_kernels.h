// Device helpers for convert_gpu_test and convert_gpu_bench (library ws_convert_cuda_testing):
// exhaustive checks of the kernel's arithmetic, random fills and a stream delay. Not public API.
#pragma once

#include <cstdint>

#include "convert/cuda/convert_cuda.h"
#include "weightsync/dtype.h"

namespace weightsync::cuda_convert {

// A mismatch count and the first mismatching input found (any order), or count 0.
struct SweepResult {
  uint64_t checked = 0;  // inputs compared (the tests check the count, so a sweep that did not
                         // run cannot pass)
  uint64_t mismatches = 0;
  uint64_t example = 0;
};

// The hardware e4m3 encoder (EncodeE4M3Quad) against PortFloatToE4M3 on every fp32 bit pattern
// in [0, 448], in the low byte of one converter and the high byte of the other. example = the
// fp32 bits.
Result<SweepResult> SweepEncoder();

// The kernel's quantizer (DeviceFp8Scale, QuantizeWords) against
// the plain definition (IEEE division, clamp, integer encoder) for every finite block amax and
// every +-x with |x| <= amax, x and amax bf16 (half = false; this covers fp32 sources, which are
// rounded to bf16 first) or fp16 (half = true). example = amax bits << 16 | x bits.
Result<SweepResult> SweepQuantizer(bool half);

// The hardware bf16 pair converter (PackBF16Pair) against RoundToBF16Bits on every fp32 bit
// pattern, each sign in each half: equal below the bf16 overflow bound, Inf or NaN (refused)
// from there up. example = the fp32 magnitude bits.
Result<SweepResult> SweepBF16Pair();

// Fills `count` elements at device `dst` with finite pseudo-random values of `dtype` (bf16,
// fp16 or fp32; fp32 below the bf16 overflow bound) whose magnitudes span 2^-12..2^12.
Status FillRandom(void* dst, int64_t count, DType dtype, uint64_t seed, CudaStream stream);

// Keeps `stream` busy for about `microseconds`: queued behind it, work the host enqueues next
// starts without a gap, so event timings measure the GPU and not the host.
Status DelayStream(CudaStream stream, int microseconds);

}  // namespace weightsync::cuda_convert
