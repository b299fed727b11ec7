// The scalar definition of every conversion (docs/conversion-numerics.md), plus job validation and
// the error scan both paths share.
#include <cmath>
#include <string>

#include "convert/convert_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace weightsync {
namespace convert_internal {
namespace {

bool IsSource(DType d) { return d == DType::kBF16 || d == DType::kF16 || d == DType::kF32; }
bool IsDestination(DType d) {
  return d == DType::kF8E4M3 || d == DType::kBF16 || d == DType::kF32;
}

std::string Where(const ConvertJob& job, int64_t row, int64_t col) {
  std::string out = StrCat(" at [", job.row_origin + row, ", ", job.col_origin + col, "]");
  if (!job.context.empty()) out += StrCat(" (", job.context, ")");
  return out;
}

// Bytes spanned by `rows` rows of `cols` elements at `stride`, or -1 on overflow.
int64_t SpanBytes(int64_t rows, int64_t cols, int64_t stride, size_t elem) {
  int64_t elems = 0;
  int64_t bytes = 0;
  if (__builtin_mul_overflow(rows - 1, stride, &elems) ||
      __builtin_add_overflow(elems, cols, &elems) ||
      __builtin_mul_overflow(elems, static_cast<int64_t>(elem), &bytes)) {
    return -1;
  }
  return bytes;
}

}  // namespace

ScopedDefaultFpEnv::ScopedDefaultFpEnv() {
#if defined(__x86_64__) || defined(__i386__)
  saved_ = _mm_getcsr();
  _mm_setcsr(0x1f80u);  // all exceptions masked, round to nearest, FTZ and DAZ off
#endif
}

ScopedDefaultFpEnv::~ScopedDefaultFpEnv() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(saved_);
#endif
}

Status ValidateJob(const ConvertJob& job) {
  auto fail = [&](const auto&... parts) {
    return InvalidArgument("tensor ", job.name, ": ", parts...);
  };
  if (!IsSource(job.src_dtype) || !IsDestination(job.dst_dtype)) {
    return fail("cannot convert ", DTypeTorchName(job.src_dtype), " to ",
                DTypeTorchName(job.dst_dtype));
  }
  if (job.rows < 0 || job.cols < 0) return fail("negative shape [", job.rows, ", ", job.cols, "]");
  if (job.row_origin < 0 || job.col_origin < 0) {
    return fail("negative origin [", job.row_origin, ", ", job.col_origin, "]");
  }
  bool fp8 = job.dst_dtype == DType::kF8E4M3;
  if (job.rows == 0 || job.cols == 0) return Status::Ok();
  if (job.src == nullptr || job.dst == nullptr) return fail("null source or destination");
  if (job.src_row_stride < job.cols || job.dst_row_stride < job.cols) {
    return fail("row stride (source ", job.src_row_stride, ", destination ", job.dst_row_stride,
                ") is less than the column count ", job.cols);
  }
  if (SpanBytes(job.rows, job.cols, job.src_row_stride, DTypeSize(job.src_dtype)) < 0 ||
      SpanBytes(job.rows, job.cols, job.dst_row_stride, DTypeSize(job.dst_dtype)) < 0) {
    return fail("region [", job.rows, ", ", job.cols, "] with its strides overflows 64 bits");
  }
  if (fp8) {
    int64_t block_cols = CeilDiv(job.cols, kFp8BlockSize);
    if (job.scales == nullptr) return fail("fp8 destination without a scale buffer");
    if (job.scale_row_stride < block_cols) {
      return fail("scale row stride ", job.scale_row_stride, " is less than the ", block_cols,
                  " scale columns");
    }
  }
  return Status::Ok();
}

Status FindFirstInvalid(const ConvertJob& job) {
  // fp32 values that round to Inf in bf16 are refused when they would be rounded to bf16.
  bool rounds_to_bf16 = job.src_dtype == DType::kF32 && job.dst_dtype != DType::kF32;
  for (int64_t r = 0; r < job.rows; ++r) {
    const void* row = SrcRow(job, r);
    for (int64_t c = 0; c < job.cols; ++c) {
      float value = 0.0f;
      switch (job.src_dtype) {
        case DType::kBF16:
          value = BF16ToFloat(static_cast<const uint16_t*>(row)[c]);
          break;
        case DType::kF16:
          value = HalfToFloat(static_cast<const uint16_t*>(row)[c]);
          break;
        default:
          value = static_cast<const float*>(row)[c];
          break;
      }
      uint32_t abs_bits = FloatToBits(value) & 0x7fffffffu;
      if (abs_bits > kNonFiniteBits) return InvalidArgument("tensor ", job.name, ": NaN", Where(job, r, c));
      if (abs_bits == kNonFiniteBits) {
        return InvalidArgument("tensor ", job.name, ": ", value < 0 ? "-Inf" : "Inf",
                               Where(job, r, c));
      }
      if (rounds_to_bf16 && abs_bits >= kBF16OverflowBits) {
        return InvalidArgument("tensor ", job.name, ": float32 value ", value, Where(job, r, c),
                               " overflows bfloat16");
      }
    }
  }
  return Status::Ok();
}

void ReferenceFp8Block(const ConvertJob& job, int64_t block_row, int64_t block_col) {
  int64_t r0 = block_row * kFp8BlockSize;
  int64_t r1 = std::min(job.rows, r0 + kFp8BlockSize);
  int64_t c0 = block_col * kFp8BlockSize;
  int64_t c1 = std::min(job.cols, c0 + kFp8BlockSize);
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    for (int64_t c = c0; c < c1; ++c) {
      amax = std::max(amax, std::fabs(Fp8SourceValue(src, job.src_dtype, c)));
    }
  }
  float scale = Fp8Scale(amax);
  job.scales[block_row * job.scale_row_stride + block_col] = scale;
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    uint8_t* dst = static_cast<uint8_t*>(DstRow(job, r));
    for (int64_t c = c0; c < c1; ++c) {
      dst[c] = QuantizeE4M3(Fp8SourceValue(src, job.src_dtype, c), scale);
    }
  }
}

void ReferenceCastRows(const ConvertJob& job, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const void* src_row = SrcRow(job, r);
    void* dst_row = DstRow(job, r);
    for (int64_t c = 0; c < job.cols; ++c) {
      // Widening to fp32 is exact for every source dtype.
      float value = 0.0f;
      uint16_t raw16 = 0;
      if (job.src_dtype == DType::kF32) {
        value = static_cast<const float*>(src_row)[c];
      } else {
        raw16 = static_cast<const uint16_t*>(src_row)[c];
        value = job.src_dtype == DType::kBF16 ? BF16ToFloat(raw16) : HalfToFloat(raw16);
      }
      if (job.dst_dtype == DType::kF32) {
        static_cast<float*>(dst_row)[c] = value;
      } else {  // kBF16: a bf16 source is copied, others round to nearest even
        static_cast<uint16_t*>(dst_row)[c] =
            job.src_dtype == DType::kBF16 ? raw16 : FloatToBF16(value);
      }
    }
  }
}

}  // namespace convert_internal

Status ConvertReference(const ConvertJob& job) {
  using namespace convert_internal;
  WS_RETURN_IF_ERROR(ValidateJob(job));
  if (job.rows == 0 || job.cols == 0) return Status::Ok();
  WS_RETURN_IF_ERROR(FindFirstInvalid(job));
  ScopedDefaultFpEnv fp_env;
  if (job.dst_dtype == DType::kF8E4M3) {
    for (int64_t br = 0; br < CeilDiv(job.rows, kFp8BlockSize); ++br) {
      for (int64_t bc = 0; bc < CeilDiv(job.cols, kFp8BlockSize); ++bc) {
        ReferenceFp8Block(job, br, bc);
      }
    }
  } else {
    ReferenceCastRows(job, 0, job.rows);
  }
  return Status::Ok();
}

}  // namespace weightsync
