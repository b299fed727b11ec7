// AVX2 + F16C conversion kernels. Every operation here is exact integer bit manipulation or an
// IEEE-exact fp32 operation (division, min/max, one addition whose rounding is the point), so the
// bytes equal the scalar reference's (convert_reference.cc); convert_test checks that.
//
// Only the functions marked WS_AVX2 use AVX2 instructions (target attributes rather than
// -mavx2 on the whole file, so inline functions from shared headers instantiated here stay
// baseline x86-64 and are safe for the linker to pick). Callers check Avx2Supported() first.
#include "convert/convert_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WS_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#endif

namespace weightsync::convert_internal {

#ifdef WS_HAVE_AVX2_KERNELS

#define WS_AVX2 __attribute__((target("avx2,f16c")))

namespace {

WS_AVX2 inline __m256i Set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }

// 8 bf16 -> fp32 bits (exact).
WS_AVX2 inline __m256i LoadBF16x8(const uint16_t* p) {
  __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16);
}

// 8 fp16 -> fp32 bits (exact, subnormals included).
WS_AVX2 inline __m256i LoadF16x8(const uint16_t* p) {
  __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castps_si256(_mm256_cvtph_ps(raw));
}

WS_AVX2 inline __m256i LoadF32x8(const float* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// fp32 bits -> bf16 RNE, the result in the upper 16 bits and zeros below; the same arithmetic as
// FloatToBF16. Callers keep NaN out (its payload could carry into the sign).
WS_AVX2 inline __m256i RoundToBF16(__m256i bits) {
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), Set1(1));
  __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(Set1(0x7fff), lsb));
  return _mm256_and_si256(rounded, Set1(0xffff0000u));
}

// fp32 bits of 8 elements of any source dtype (exact widening).
WS_AVX2 inline __m256i WidenX8(const void* row, DType dtype, int64_t col) {
  switch (dtype) {
    case DType::kBF16:
      return LoadBF16x8(static_cast<const uint16_t*>(row) + col);
    case DType::kF16:
      return LoadF16x8(static_cast<const uint16_t*>(row) + col);
    default:
      return LoadF32x8(static_cast<const float*>(row) + col);
  }
}

// The FP8 value rule: fp32 bits of 8 source elements (fp32 sources rounded to bf16).
WS_AVX2 inline __m256i Fp8Values(const void* row, DType dtype, int64_t col) {
  const __m256i bits = WidenX8(row, dtype, col);
  return dtype == DType::kF32 ? RoundToBF16(bits) : bits;
}

// Magnitude bits of 8 elements as the FP8 rule sees them; >= 0x7f800000 marks a refused value.
// fp32 is rounded after taking the magnitude so NaN payloads cannot wrap into the sign bit.
WS_AVX2 inline __m256i Fp8AbsBits(const void* row, DType dtype, int64_t col) {
  __m256i mask = Set1(0x7fffffffu);
  switch (dtype) {
    case DType::kBF16:
      return _mm256_and_si256(LoadBF16x8(static_cast<const uint16_t*>(row) + col), mask);
    case DType::kF16:
      return _mm256_and_si256(LoadF16x8(static_cast<const uint16_t*>(row) + col), mask);
    default:
      return RoundToBF16(_mm256_and_si256(LoadF32x8(static_cast<const float*>(row) + col), mask));
  }
}

// Scalar twin of Fp8AbsBits for column tails.
inline uint32_t Fp8AbsBitsScalar(const void* row, DType dtype, int64_t col) {
  if (dtype == DType::kF32) {
    uint32_t abs_bits = FloatToBits(static_cast<const float*>(row)[col]) & 0x7fffffffu;
    return abs_bits >= kBF16OverflowBits ? kNonFiniteBits
                                         : FloatToBits(BF16ToFloat(FloatToBF16(BitsToFloat(abs_bits))));
  }
  return FloatToBits(Fp8SourceValue(row, dtype, col)) & 0x7fffffffu;
}

WS_AVX2 inline uint32_t HorizontalMaxU32(__m256i v) {
  __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
  m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(m));
}

WS_AVX2 inline uint32_t HorizontalMaxU16(__m256i v) {
  __m128i m = _mm_max_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  m = _mm_max_epu16(m, _mm_srli_si128(m, 8));
  m = _mm_max_epu16(m, _mm_srli_si128(m, 4));
  m = _mm_max_epu16(m, _mm_srli_si128(m, 2));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(m)) & 0xffffu;
}

// e4m3fn codes (one per 32-bit lane) of finite y with |y| <= 448; equals FloatToE4M3 there.
WS_AVX2 inline __m256i EncodeE4M3(__m256 y) {
  __m256i bits = _mm256_castps_si256(y);
  __m256i abs_bits = _mm256_and_si256(bits, Set1(0x7fffffffu));
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(bits, 24), Set1(0x80));
  // Normal results: round away the low 20 mantissa bits to nearest even, rebias 127 -> 7.
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(abs_bits, 20), Set1(1));
  __m256i normal = _mm256_sub_epi32(
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(abs_bits, Set1(0x7ffff)), lsb), 20),
      Set1(960));
  // |y| < 2^-6: 2^14 + |y| lands in the binade whose ulp is 2^-9, so the (correctly rounded,
  // nearest-even) fp32 sum is 2^14 + RNE(|y| * 2^9) * 2^-9, and its low mantissa bits are the
  // subnormal code (8 when it rounds up to the smallest normal, whose code is also 8).
  __m256 sum = _mm256_add_ps(_mm256_castsi256_ps(abs_bits), _mm256_set1_ps(16384.0f));
  __m256i subnormal = _mm256_sub_epi32(_mm256_castps_si256(sum), Set1(0x46800000u));
  __m256i is_subnormal = _mm256_cmpgt_epi32(Set1(0x3c800000u), abs_bits);
  return _mm256_or_si256(_mm256_blendv_epi8(normal, subnormal, is_subnormal), sign);
}

WS_AVX2 inline __m256i QuantizeX8(__m256i value_bits, __m256 scale) {
  __m256 y = _mm256_div_ps(_mm256_castsi256_ps(value_bits), scale);
  y = _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-kE4M3Max)), _mm256_set1_ps(kE4M3Max));
  return EncodeE4M3(y);
}

// Four vectors of 32-bit codes (each <= 0xff) -> 32 bytes in element order.
WS_AVX2 inline __m256i PackCodes32(__m256i a, __m256i b, __m256i c, __m256i d) {
  __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// One vector of 32-bit codes -> 8 bytes.
WS_AVX2 inline void StoreCodes8(uint8_t* dst, __m256i codes) {
  __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(codes, codes), _mm256_setzero_si256());
  // Lane 0 now starts with codes 0..3, lane 1 with codes 4..7.
  __m256i joined = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(joined));
}

// 16 fp32 bits, already rounded by RoundToBF16 -> 16 bf16 in element order.
WS_AVX2 inline void StoreBF16x16(uint16_t* dst, __m256i lo, __m256i hi) {
  __m256i packed = _mm256_packus_epi32(_mm256_srli_epi32(lo, 16), _mm256_srli_epi32(hi, 16));
  packed = _mm256_permute4x64_epi64(packed, 0xd8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), packed);
}

inline float WidenScalar(const void* row, DType dtype, int64_t col) {
  switch (dtype) {
    case DType::kBF16:
      return BF16ToFloat(static_cast<const uint16_t*>(row)[col]);
    case DType::kF16:
      return HalfToFloat(static_cast<const uint16_t*>(row)[col]);
    default:
      return static_cast<const float*>(row)[col];
  }
}

// bf16 -> bf16: a checked copy (NaN/Inf are still refused).
WS_AVX2 bool CopyBF16Row(const uint16_t* src, uint16_t* dst, int64_t cols) {
  __m256i amax = _mm256_setzero_si256();
  __m256i mask = _mm256_set1_epi16(0x7fff);
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c));
    amax = _mm256_max_epu16(amax, _mm256_and_si256(v, mask));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), v);
  }
  uint32_t max_bits = HorizontalMaxU16(amax);
  for (; c < cols; ++c) {
    max_bits = std::max<uint32_t>(max_bits, src[c] & 0x7fffu);
    dst[c] = src[c];
  }
  return max_bits < 0x7f80u;
}

}  // namespace

bool Avx2Supported() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return supported;
}

namespace {

template <DType kSrc>
WS_AVX2 inline __m256i Fp8ValuesT(const void* row, int64_t col) {
  return Fp8Values(row, kSrc, col);  // kSrc is a constant: the switch folds away
}
template <DType kSrc>
WS_AVX2 inline __m256i Fp8AbsBitsT(const void* row, int64_t col) {
  return Fp8AbsBits(row, kSrc, col);
}

// Blocks [bc_begin, bc_end) of block row `block_row`. Rows are swept whole across the strip (not
// block by block) so the hardware prefetcher sees long contiguous streams and each source row
// costs one page walk, not one per block.
template <DType kSrc>
WS_AVX2 bool Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin,
                      int64_t bc_end) {
  const int64_t r0 = block_row * kFp8BlockSize;
  const int64_t r1 = std::min(job.rows, r0 + kFp8BlockSize);
  const int64_t nblocks = bc_end - bc_begin;
  __m256i amax_v[kFp8StripBlocks];
  uint32_t amax_tail[kFp8StripBlocks];
  for (int64_t b = 0; b < nblocks; ++b) {
    amax_v[b] = _mm256_setzero_si256();
    amax_tail[b] = 0;
  }

  // Pass 1: amax as the integer max of magnitude bits (ordered like the floats for finite
  // non-negative values, so the reduction order does not matter); NaN/Inf show up as >= 0x7f800000.
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t c0 = (bc_begin + b) * kFp8BlockSize;
      const int64_t c1 = std::min(job.cols, c0 + kFp8BlockSize);
      __m256i acc = amax_v[b];
      int64_t c = c0;
      for (; c + 8 <= c1; c += 8) acc = _mm256_max_epu32(acc, Fp8AbsBitsT<kSrc>(src, c));
      amax_v[b] = acc;
      for (; c < c1; ++c) amax_tail[b] = std::max(amax_tail[b], Fp8AbsBitsScalar(src, kSrc, c));
    }
  }
  __m256 scale_v[kFp8StripBlocks];
  float scale_s[kFp8StripBlocks];
  for (int64_t b = 0; b < nblocks; ++b) {
    uint32_t amax_bits = std::max(amax_tail[b], HorizontalMaxU32(amax_v[b]));
    if (amax_bits >= kNonFiniteBits) return false;
    scale_s[b] = Fp8Scale(BitsToFloat(amax_bits));
    scale_v[b] = _mm256_set1_ps(scale_s[b]);
    job.scales[block_row * job.scale_row_stride + bc_begin + b] = scale_s[b];
  }

  // Pass 2: q = e4m3(clamp(x / scale)), 32 elements per step while they last.
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    uint8_t* dst = static_cast<uint8_t*>(DstRow(job, r));
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t c0 = (bc_begin + b) * kFp8BlockSize;
      const int64_t c1 = std::min(job.cols, c0 + kFp8BlockSize);
      const __m256 scale = scale_v[b];
      int64_t c = c0;
      for (; c + 32 <= c1; c += 32) {
        __m256i q0 = QuantizeX8(Fp8ValuesT<kSrc>(src, c), scale);
        __m256i q1 = QuantizeX8(Fp8ValuesT<kSrc>(src, c + 8), scale);
        __m256i q2 = QuantizeX8(Fp8ValuesT<kSrc>(src, c + 16), scale);
        __m256i q3 = QuantizeX8(Fp8ValuesT<kSrc>(src, c + 24), scale);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), PackCodes32(q0, q1, q2, q3));
      }
      for (; c + 8 <= c1; c += 8) StoreCodes8(dst + c, QuantizeX8(Fp8ValuesT<kSrc>(src, c), scale));
      for (; c < c1; ++c) dst[c] = QuantizeE4M3(Fp8SourceValue(src, kSrc, c), scale_s[b]);
    }
  }
  return true;
}

}  // namespace

bool Avx2Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin, int64_t bc_end) {
  switch (job.src_dtype) {
    case DType::kBF16:
      return Fp8Strip<DType::kBF16>(job, block_row, bc_begin, bc_end);
    case DType::kF16:
      return Fp8Strip<DType::kF16>(job, block_row, bc_begin, bc_end);
    default:
      return Fp8Strip<DType::kF32>(job, block_row, bc_begin, bc_end);
  }
}

WS_AVX2 bool Avx2CastRows(const ConvertJob& job, int64_t row_begin, int64_t row_end) {
  const DType src_dtype = job.src_dtype;
  // Refuse NaN/Inf always, and fp32 magnitudes that round to Inf when rounding to bf16.
  const uint32_t limit = (src_dtype == DType::kF32 && job.dst_dtype == DType::kBF16)
                             ? kBF16OverflowBits
                             : kNonFiniteBits;
  const __m256i abs_mask = Set1(0x7fffffffu);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const void* src = SrcRow(job, r);
    void* dst_row = DstRow(job, r);
    if (src_dtype == DType::kBF16 && job.dst_dtype == DType::kBF16) {
      if (!CopyBF16Row(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst_row),
                       job.cols)) {
        return false;
      }
      continue;
    }
    __m256i amax_v = _mm256_setzero_si256();
    uint32_t amax_bits = 0;
    int64_t c = 0;
    if (job.dst_dtype == DType::kF32) {
      float* dst = static_cast<float*>(dst_row);
      for (; c + 8 <= job.cols; c += 8) {
        __m256i v = WidenX8(src, src_dtype, c);
        amax_v = _mm256_max_epu32(amax_v, _mm256_and_si256(v, abs_mask));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), v);
      }
      for (; c < job.cols; ++c) {
        float value = WidenScalar(src, src_dtype, c);
        amax_bits = std::max(amax_bits, FloatToBits(value) & 0x7fffffffu);
        dst[c] = value;
      }
    } else {  // fp16 / fp32 -> bf16
      uint16_t* dst = static_cast<uint16_t*>(dst_row);
      for (; c + 16 <= job.cols; c += 16) {
        __m256i lo = WidenX8(src, src_dtype, c);
        __m256i hi = WidenX8(src, src_dtype, c + 8);
        amax_v = _mm256_max_epu32(amax_v, _mm256_and_si256(lo, abs_mask));
        amax_v = _mm256_max_epu32(amax_v, _mm256_and_si256(hi, abs_mask));
        StoreBF16x16(dst + c, RoundToBF16(lo), RoundToBF16(hi));
      }
      for (; c < job.cols; ++c) {
        float value = WidenScalar(src, src_dtype, c);
        amax_bits = std::max(amax_bits, FloatToBits(value) & 0x7fffffffu);
        dst[c] = FloatToBF16(value);
      }
    }
    if (std::max(amax_bits, HorizontalMaxU32(amax_v)) >= limit) return false;
  }
  return true;
}

WS_AVX2 void Avx2EncodeE4M3(const float* in, uint8_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) StoreCodes8(out + i, EncodeE4M3(_mm256_loadu_ps(in + i)));
  for (; i < n; ++i) out[i] = FloatToE4M3(in[i]);
}

#else  // no AVX2 kernels in this build: ConvertFast always takes the scalar path

bool Avx2Supported() { return false; }
bool Avx2Fp8Strip(const ConvertJob&, int64_t, int64_t, int64_t) { return false; }
bool Avx2CastRows(const ConvertJob&, int64_t, int64_t) { return false; }
void Avx2EncodeE4M3(const float* in, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToE4M3(in[i]);
}

#endif

}  // namespace weightsync::convert_internal
