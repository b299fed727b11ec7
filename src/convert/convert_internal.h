// Pieces shared by the reference and fast conversion paths, and hooks for tests. Not public API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "convert/block_quantize.h"
#include "convert/fp8_e4m3.h"
#include "core/float_bits.h"

namespace weightsync::convert_internal {

using weightsync::CeilDiv;

// The smallest scale: keeps all-zero blocks from dividing by zero.
inline constexpr float kMinScale = 1e-12f;

// A source element is refused when its fp32 value's magnitude bits reach this (NaN / Inf).
inline constexpr uint32_t kNonFiniteBits = 0x7f800000u;
// fp32 magnitudes from here up round to Inf in bf16 (0x7f7f8000 + 0x7fff + 1 carries into the
// exponent), so fp32 sources going to bf16 or fp8 are refused from here.
inline constexpr uint32_t kBF16OverflowBits = 0x7f7f8000u;

// Checks shapes, strides, pointers and dtypes; says nothing about the values.
Status ValidateJob(const ConvertJob& job);

// The Status for the first element (in row-major order over the region) that cannot be
// converted, or OK. Both paths report errors through this, so their messages are identical.
Status FindFirstInvalid(const ConvertJob& job);

// The value an element contributes to FP8 quantization: bf16 and fp16 exactly, fp32 rounded to
// bf16 (RNE) first. The source must already be known to be valid.
inline float Fp8SourceValue(const void* src_row, DType dtype, int64_t col) {
  switch (dtype) {
    case DType::kBF16:
      return BF16ToFloat(static_cast<const uint16_t*>(src_row)[col]);
    case DType::kF16:
      return HalfToFloat(static_cast<const uint16_t*>(src_row)[col]);
    default:
      return BF16ToFloat(FloatToBF16(static_cast<const float*>(src_row)[col]));
  }
}

inline float Fp8Scale(float amax) { return std::max(amax / kE4M3Max, kMinScale); }

// IEEE division, not multiplication by 1/scale: the two differ in the last bit for some inputs.
inline uint8_t QuantizeE4M3(float x, float scale) {
  float y = std::min(std::max(x / scale, -kE4M3Max), kE4M3Max);
  return FloatToE4M3(y);
}

inline const void* SrcRow(const ConvertJob& job, int64_t row) {
  return static_cast<const char*>(job.src) +
         row * job.src_row_stride * static_cast<int64_t>(DTypeSize(job.src_dtype));
}
inline void* DstRow(const ConvertJob& job, int64_t row) {
  return static_cast<char*>(job.dst) +
         row * job.dst_row_stride * static_cast<int64_t>(DTypeSize(job.dst_dtype));
}

// FP8 work items are strips of up to this many blocks of one block row (2048 columns): long
// enough to stream, short enough that narrow-but-tall tensors still split over threads.
inline constexpr int64_t kFp8StripBlocks = 16;

// Scalar kernels. They assume ValidateJob and FindFirstInvalid passed.
void ReferenceFp8Block(const ConvertJob& job, int64_t block_row, int64_t block_col);
void ReferenceCastRows(const ConvertJob& job, int64_t row_begin, int64_t row_end);

// AVX2 kernels (convert_avx2.cc). They check values as they go and return false on one that
// FindFirstInvalid would refuse; the output is then undefined.
bool Avx2Supported();
// FP8 blocks [bc_begin, bc_end) of one block row; bc_end - bc_begin <= kFp8StripBlocks.
bool Avx2Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin, int64_t bc_end);
bool Avx2CastRows(const ConvertJob& job, int64_t row_begin, int64_t row_end);
// The SIMD e4m3 encoder alone, for exhaustive tests: in[i] must be finite with |in[i]| <= 448.
void Avx2EncodeE4M3(const float* in, uint8_t* out, int64_t n);

// AVX-512 (F, BW, VL, VBMI) kernels (convert_avx512.cc): FP8 from bf16 and fp32 by per-block
// lookup tables (fp16 sources go to the AVX2 kernel); same contract as the AVX2 kernels. Casts
// use the AVX2 kernels (they are memory-bound already).
bool Avx512Supported();
bool Avx512Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin, int64_t bc_end);
// Hooks for exhaustive tests: the AVX-512 e4m3 encoder alone (same input rule as
// Avx2EncodeE4M3), and the table quantizer on a bf16 vector with one scale, which must be
// Fp8Scale(amax) for some finite amax >= every |in[i]|.
void Avx512EncodeE4M3(const float* in, uint8_t* out, int64_t n);
void Avx512QuantizeBF16(const uint16_t* in, uint8_t* out, int64_t n, float scale);

enum class Path { kScalar, kAvx2, kAvx512 };
// ConvertFast with the kernels and thread count forced (tests run every path on any data size).
Status ConvertWithPath(const ConvertJob& job, int threads, Path path);

// Sets the default floating-point environment (round to nearest, no flush-to-zero or
// denormals-are-zero) for this thread while alive, and restores the caller's on exit: a caller
// built with -ffast-math must not change the bytes we produce.
class ScopedDefaultFpEnv {
 public:
  ScopedDefaultFpEnv();
  ~ScopedDefaultFpEnv();
  ScopedDefaultFpEnv(const ScopedDefaultFpEnv&) = delete;
  ScopedDefaultFpEnv& operator=(const ScopedDefaultFpEnv&) = delete;

 private:
  unsigned saved_ = 0;
};

}  // namespace weightsync::convert_internal
