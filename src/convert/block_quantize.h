// Conversion of one 2D strided region of a weight into the bytes an inference kernel reads:
// float8_e4m3fn with one fp32 scale per 128x128 block, or bf16 / fp32 casts.
//
// The numbers are defined bit for bit in docs/conversion-numerics.md. ConvertReference is that
// definition written as plainly as possible; ConvertFast (SIMD, multi-threaded) must produce the
// same bytes and the same Status for every input, which convert_test checks.
#pragma once

#include <cstdint>
#include <string_view>

#include "weightsync/dtype.h"
#include "weightsync/status.h"

namespace weightsync {

// FP8 quantization blocks are kFp8BlockSize x kFp8BlockSize elements (DeepSeek-V3 style).
inline constexpr int64_t kFp8BlockSize = 128;

// Blocks of b covering a items (a >= 0, b > 0): FP8 scale rows and columns, and the like.
inline constexpr int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One conversion: rows x cols elements of `src` (row-major, row stride in elements) into `dst`.
// Source and destination must not overlap. Supported:
//   src_dtype in {kBF16, kF16, kF32} x dst_dtype in {kF8E4M3, kBF16, kF32}.
struct ConvertJob {
  const void* src = nullptr;
  DType src_dtype = DType::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t src_row_stride = 0;  // elements, >= cols

  void* dst = nullptr;
  DType dst_dtype = DType::kF8E4M3;
  int64_t dst_row_stride = 0;  // elements, >= cols

  // kF8E4M3 only: fp32 scales of shape [ceil(rows/128), ceil(cols/128)].
  float* scales = nullptr;
  int64_t scale_row_stride = 0;  // elements, >= ceil(cols/128)

  // For error messages only: the tensor name, and extra context such as "expert 5".
  std::string_view name;
  std::string_view context;
  // Where this region starts in the whole source tensor, so errors report whole-tensor
  // coordinates (the up half of a fused gate_up_proj starts at row I, whatever I is). The job's
  // own first row and column always start a quantization block.
  int64_t row_origin = 0;
  int64_t col_origin = 0;
};

// The scalar definition: single-threaded, simple, obviously correct. Validates the whole source
// before writing anything.
Status ConvertReference(const ConvertJob& job);

// The same result, vectorized (AVX-512 or AVX2 when the CPU has it) and split over up to
// `threads` threads (<= 0: one per hardware thread). On a non-OK Status the destination and
// scales are undefined (partly written): callers convert into staging memory, never into live
// inference weights.
Status ConvertFast(const ConvertJob& job, int threads);

// The kernels ConvertFast uses on this machine: "avx512", "avx2" or "scalar".
std::string_view FastPathName();

}  // namespace weightsync
