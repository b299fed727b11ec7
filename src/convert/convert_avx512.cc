// AVX-512 (F, BW, VBMI) FP8 block quantization for bf16 and fp32 sources, by table lookup.
//
// Why tables are exact (docs/conversion-numerics.md, "AVX-512 path"): after the value rule every
// element is a bf16 value x = +-(1 + m/128) * 2^(E-127) (E = 8-bit exponent field, m = 7-bit
// mantissa), or zero / a bf16 subnormal. Write the block's scale as S * 2^K with S in [1, 2).
// Then x / scale = ((1 + m/128) / S) * 2^t with t = E - 127 - K, and since multiplying by 2^t is
// exact while the result is an fp32 normal, the correctly rounded quotient is
//     fl(x / scale) = r[m] * 2^t,   r[m] = fl((1 + m/128) / S)   (one IEEE division per m).
// (A quotient below 2^-126 encodes to a signed zero whichever way it rounds, as does anything
// below 2^-10.) So the e4m3 code depends only on (m, t, sign), and with u = max(0, t + 11):
//   u >= 6 (y >= 2^-5): the normal e4m3 rounding commutes with scaling by 2^t, so
//            code = min(126, 8u + T[m]) with T[m] = FloatToE4M3(r[m]) - 88 (mod 256); the min
//            is the clamp to 448 (the code is monotonic in y);
//   u 1..5:  code = S_u[m] = FloatToE4M3(r[m] * 2^(u-11)) (the subnormal range rounds at 2^-9);
//   u = 0:   y < 2^-10 (or x is zero / a bf16 subnormal): code 0.
// plus the sign bit. The 6 tables of 128 codes are built per block with 128 vdivps-lane divisions
// and the SIMD encoder, then each group of 64 elements costs a few vpermi2b lookups
// instead of 64 divisions and encodings. convert_test compares this path with the reference
// byte for byte, and E4M3Test.Avx512TablesMatchScalarForEveryBf16 sweeps (amax, x) pairs.
//
// fp16 sources (10-bit mantissas) are not table-friendly; this path hands them to the AVX2 kernel.
#include "convert/convert_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WS_HAVE_AVX512_KERNELS 1
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized and -Wuninitialized (their _mm512_undefined_* idiom), and
// -Wpsabi notes that 512-bit arguments differ without -mavx512f; both are noise for internal
// functions that only AVX-512 code calls.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"
#include <immintrin.h>
#endif

namespace weightsync::convert_internal {

#ifdef WS_HAVE_AVX512_KERNELS

#define WS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

bool Avx512Supported() {
  static const bool supported =
      Avx2Supported() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi");
  return supported;
}

namespace {

WS_AVX512 inline __m512i Set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }

// e4m3fn codes (one per 32-bit lane) of finite y with |y| <= 448; the AVX2 EncodeE4M3 on 16
// lanes (normal range by integer rounding, subnormal range by adding 2^14 in fp32).
WS_AVX512 inline __m512i EncodeE4M3x16(__m512 y) {
  __m512i bits = _mm512_castps_si512(y);
  __m512i abs_bits = _mm512_and_si512(bits, Set1(0x7fffffffu));
  __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), Set1(0x80));
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(abs_bits, 20), Set1(1));
  __m512i normal = _mm512_sub_epi32(
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(abs_bits, Set1(0x7ffff)), lsb), 20),
      Set1(960));
  __m512 sum = _mm512_add_ps(_mm512_castsi512_ps(abs_bits), _mm512_set1_ps(16384.0f));
  __m512i subnormal = _mm512_sub_epi32(_mm512_castps_si512(sum), Set1(0x46800000u));
  __mmask16 is_subnormal = _mm512_cmplt_epu32_mask(abs_bits, Set1(0x3c800000u));
  return _mm512_or_si512(_mm512_mask_blend_epi32(is_subnormal, normal, subnormal), sign);
}

// The per-block lookup tables (see the file comment), each 128 codes in two registers.
struct Fp8Tables {
  __m512i t_lo, t_hi;        // T[m]: normal range, add 8u
  __m512i s_lo[5], s_hi[5];  // S_1..S_5[m]
  __m512i base;              // 116 + K in every byte: u = saturating E - base
};

WS_AVX512 inline void BuildTables(float scale, Fp8Tables& tab) {
  const uint32_t scale_bits = FloatToBits(scale);  // a normal float: >= 1e-12, finite
  const int k = static_cast<int>(scale_bits >> 23) - 127;
  const __m512 s = _mm512_set1_ps(BitsToFloat((scale_bits & 0x7fffffu) | 0x3f800000u));
  alignas(64) uint8_t bytes[6][128];
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int g = 0; g < 8; ++g) {
    // 1 + m/128 for m = 16g .. 16g + 15: exponent 0, mantissa m << 16.
    __m512i m = _mm512_add_epi32(lane, Set1(static_cast<uint32_t>(16 * g)));
    __m512 num = _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi32(m, 16), Set1(0x3f800000u)));
    __m512i r = _mm512_castps_si512(_mm512_div_ps(num, s));  // in (0.5, 2): normal
    __m512i t = _mm512_sub_epi32(EncodeE4M3x16(_mm512_castsi512_ps(r)), Set1(88));
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes[0] + 16 * g), _mm512_cvtepi32_epi8(t));
    for (int u = 1; u <= 5; ++u) {
      // r * 2^(u - 11): exact (r * 2^-10 >= 2^-11 is far from the fp32 subnormals).
      __m512i scaled = _mm512_sub_epi32(r, Set1(static_cast<uint32_t>(11 - u) << 23));
      __m512i codes = EncodeE4M3x16(_mm512_castsi512_ps(scaled));
      _mm_store_si128(reinterpret_cast<__m128i*>(bytes[u] + 16 * g), _mm512_cvtepi32_epi8(codes));
    }
  }
  tab.t_lo = _mm512_load_si512(bytes[0]);
  tab.t_hi = _mm512_load_si512(bytes[0] + 64);
  for (int u = 0; u < 5; ++u) {
    tab.s_lo[u] = _mm512_load_si512(bytes[u + 1]);
    tab.s_hi[u] = _mm512_load_si512(bytes[u + 1] + 64);
  }
  tab.base = _mm512_set1_epi8(static_cast<char>(116 + k));  // k in [-40, 119]
}

// Codes of 64 elements from their bf16 bits: bytes m (mantissa, bit 7 ignored by vpermi2b),
// e (exponent field), hi (sign in bit 7).
WS_AVX512 inline __m512i QuantizeBytes(const Fp8Tables& tab, __m512i m, __m512i e, __m512i hi) {
  const __m512i u = _mm512_subs_epu8(e, tab.base);
  __m512i normal = _mm512_add_epi8(_mm512_slli_epi16(u, 3),  // u <= 20: no carry between bytes
                                   _mm512_permutex2var_epi8(tab.t_lo, m, tab.t_hi));
  normal = _mm512_min_epu8(normal, _mm512_set1_epi8(126));
  // Quotients below 2^-5 (u < 6: e4m3 subnormals and zeros) are rare in trained weights (a few
  // per 128x128 block), so most groups of 64 skip their five table lookups; the branch is well
  // predicted and the bytes are the same either way.
  const __mmask64 is_small = _mm512_cmplt_epu8_mask(u, _mm512_set1_epi8(6));
  __m512i code = normal;
  if (is_small != 0) {
    const __mmask64 bit0 = _mm512_test_epi8_mask(u, _mm512_set1_epi8(1));
    const __mmask64 bit1 = _mm512_test_epi8_mask(u, _mm512_set1_epi8(2));
    const __mmask64 bit2 = _mm512_test_epi8_mask(u, _mm512_set1_epi8(4));
    __m512i s01 = _mm512_maskz_permutex2var_epi8(bit0, tab.s_lo[0], m, tab.s_hi[0]);
    __m512i s23 =
        _mm512_mask_blend_epi8(bit0, _mm512_permutex2var_epi8(tab.s_lo[1], m, tab.s_hi[1]),
                               _mm512_permutex2var_epi8(tab.s_lo[2], m, tab.s_hi[2]));
    __m512i s45 =
        _mm512_mask_blend_epi8(bit0, _mm512_permutex2var_epi8(tab.s_lo[3], m, tab.s_hi[3]),
                               _mm512_permutex2var_epi8(tab.s_lo[4], m, tab.s_hi[4]));
    __m512i small = _mm512_mask_blend_epi8(bit2, _mm512_mask_blend_epi8(bit1, s01, s23), s45);
    code = _mm512_mask_blend_epi8(is_small, normal, small);
  }
  // code | (hi & 0x80)
  return _mm512_ternarylogic_epi32(code, hi, _mm512_set1_epi8(static_cast<char>(0x80)), 0xf8);
}

// 64 bf16 values in two registers (element order) -> 64 codes.
WS_AVX512 inline __m512i QuantizeBF16x64(const Fp8Tables& tab, __m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi8(
      126, 124, 122, 120, 118, 116, 114, 112, 110, 108, 106, 104, 102, 100, 98, 96, 94, 92, 90, 88,
      86, 84, 82, 80, 78, 76, 74, 72, 70, 68, 66, 64, 62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42,
      40, 38, 36, 34, 32, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi8(even, _mm512_set1_epi8(1));
  __m512i m = _mm512_permutex2var_epi8(a, even, b);
  __m512i hi = _mm512_permutex2var_epi8(a, odd, b);
  __m512i e = _mm512_permutex2var_epi8(_mm512_srli_epi16(a, 7), even, _mm512_srli_epi16(b, 7));
  return QuantizeBytes(tab, m, e, hi);
}

// 32 fp32 values -> their bf16 (RNE, as FloatToBF16; NaN kept out by the amax check) in one
// register, element order.
WS_AVX512 inline __m512i RoundToBF16x16(__m512i bits) {
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), Set1(1));
  return _mm512_add_epi32(bits, _mm512_add_epi32(lsb, Set1(0x7fff)));
}
WS_AVX512 inline __m512i RoundPackBF16x32(__m512i lo, __m512i hi) {
  const __m512i odd_words = _mm512_set_epi16(
      63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19,
      17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_permutex2var_epi16(RoundToBF16x16(lo), odd_words, RoundToBF16x16(hi));
}

WS_AVX512 inline __mmask32 Mask32(int64_t n) {
  return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << n) - 1u);
}
WS_AVX512 inline __mmask16 Mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff)
                 : static_cast<__mmask16>((uint32_t{1} << (n > 0 ? n : 0)) - 1u);
}
WS_AVX512 inline __mmask64 Mask64(int64_t n) {
  return n >= 64 ? ~__mmask64{0} : (uint64_t{1} << n) - 1u;
}

// Loads up to 64 source elements (n of them, the rest zero) as bf16 in two registers.
template <DType kSrc>
WS_AVX512 inline void LoadBF16x64(const void* row, int64_t col, int64_t n, __m512i& a,
                                  __m512i& b) {
  if constexpr (kSrc == DType::kBF16) {
    const uint16_t* p = static_cast<const uint16_t*>(row) + col;
    if (n >= 64) {
      a = _mm512_loadu_si512(p);
      b = _mm512_loadu_si512(p + 32);
    } else {
      a = _mm512_maskz_loadu_epi16(Mask32(n), p);
      b = _mm512_maskz_loadu_epi16(Mask32(n - 32 > 0 ? n - 32 : 0), p + 32);
    }
  } else {
    const float* p = static_cast<const float*>(row) + col;
    __m512i v[4];
    if (n >= 64) {
      for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_si512(p + 16 * i);
    } else {
      for (int i = 0; i < 4; ++i) v[i] = _mm512_maskz_loadu_epi32(Mask16(n - 16 * i), p + 16 * i);
    }
    a = RoundPackBF16x32(v[0], v[1]);
    b = RoundPackBF16x32(v[2], v[3]);
  }
}

// Blocks [bc_begin, bc_end) of block row `block_row`. Pass 1 sweeps whole rows of the strip
// (long streams for the prefetcher) for the amax; pass 2 then quantizes the strip out of L2 (a
// 16-block strip is 512 KiB of bf16, 1 MiB of fp32).
// The part of the source the next strip will read: rows [row_begin, row_end) x columns
// [col_begin, col_end); empty when there is none.
struct PrefetchRegion {
  int64_t row_begin = 0, row_end = 0, col_begin = 0, col_end = 0;
};

template <DType kSrc>
WS_AVX512 bool Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin,
                        int64_t bc_end, const PrefetchRegion& next) {
  const int64_t r0 = block_row * kFp8BlockSize;
  const int64_t r1 = std::min(job.rows, r0 + kFp8BlockSize);
  const int64_t nblocks = bc_end - bc_begin;
  __m512i amax_v[kFp8StripBlocks];
  for (int64_t b = 0; b < nblocks; ++b) amax_v[b] = _mm512_setzero_si512();

  // Pass 1: the integer max of magnitude bits. For fp32 the max is taken before rounding to
  // bf16 (rounding is monotonic, so round(max) = max(round)); NaN/Inf and fp32 values that round
  // to Inf show up as bits >= the limit.
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t c0 = (bc_begin + b) * kFp8BlockSize;
      const int64_t c1 = std::min(job.cols, c0 + kFp8BlockSize);
      __m512i acc = amax_v[b];
      if constexpr (kSrc == DType::kBF16) {
        const uint16_t* p = static_cast<const uint16_t*>(src);
        const __m512i mask = _mm512_set1_epi16(0x7fff);
        int64_t c = c0;
        for (; c + 32 <= c1; c += 32) {
          acc = _mm512_max_epu16(acc, _mm512_and_si512(_mm512_loadu_si512(p + c), mask));
        }
        if (c < c1) {
          acc = _mm512_max_epu16(
              acc, _mm512_and_si512(_mm512_maskz_loadu_epi16(Mask32(c1 - c), p + c), mask));
        }
      } else {
        const float* p = static_cast<const float*>(src);
        const __m512i mask = Set1(0x7fffffffu);
        int64_t c = c0;
        for (; c + 32 <= c1; c += 32) {
          acc = _mm512_max_epu32(acc, _mm512_and_si512(_mm512_loadu_si512(p + c), mask));
          acc = _mm512_max_epu32(acc, _mm512_and_si512(_mm512_loadu_si512(p + c + 16), mask));
        }
        for (; c < c1; c += 16) {
          acc = _mm512_max_epu32(
              acc, _mm512_and_si512(_mm512_maskz_loadu_epi32(Mask16(c1 - c), p + c), mask));
        }
      }
      amax_v[b] = acc;
    }
  }

  float scales[kFp8StripBlocks];
  for (int64_t b = 0; b < nblocks; ++b) {
    uint32_t amax_bits = 0;
    if constexpr (kSrc == DType::kBF16) {
      __m512i v = amax_v[b];
      v = _mm512_max_epu32(_mm512_and_si512(v, Set1(0xffff)), _mm512_srli_epi32(v, 16));
      amax_bits = _mm512_reduce_max_epu32(v) << 16;
      if (amax_bits >= kNonFiniteBits) return false;
    } else {
      amax_bits = _mm512_reduce_max_epu32(amax_v[b]);
      if (amax_bits >= kBF16OverflowBits) return false;
      amax_bits = static_cast<uint32_t>(FloatToBF16(BitsToFloat(amax_bits))) << 16;
    }
    scales[b] = Fp8Scale(BitsToFloat(amax_bits));
    job.scales[block_row * job.scale_row_stride + bc_begin + b] = scales[b];
  }

  // Pass 2, again row by row across the strip (out of L2), so the destination is also written in
  // long contiguous runs (block-major order made every 128-byte row piece a separate cache miss
  // at 384 MiB). The tables of all blocks of the strip stay in L1 (12 KiB).
  Fp8Tables tabs[kFp8StripBlocks];
  for (int64_t b = 0; b < nblocks; ++b) BuildTables(scales[b], tabs[b]);
  // Meanwhile the next strip's source is prefetched into L2, one of its rows per row here, so
  // its pass 1 overlaps this pass's arithmetic instead of waiting on memory.
  const int64_t elem = static_cast<int64_t>(DTypeSize(kSrc));
  const int64_t next_bytes = (next.col_end - next.col_begin) * elem;
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = SrcRow(job, r);
    uint8_t* dst = static_cast<uint8_t*>(DstRow(job, r));
    const int64_t nr = next.row_begin + (r - r0);
    if (nr < next.row_end) {
      const char* p = static_cast<const char*>(SrcRow(job, nr)) + next.col_begin * elem;
      for (int64_t off = 0; off < next_bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T1);
    }
    for (int64_t b = 0; b < nblocks; ++b) {
      const Fp8Tables& tab = tabs[b];
      const int64_t c0 = (bc_begin + b) * kFp8BlockSize;
      const int64_t c1 = std::min(job.cols, c0 + kFp8BlockSize);
      for (int64_t c = c0; c < c1; c += 64) {
        __m512i a, bb;
        LoadBF16x64<kSrc>(src, c, c1 - c, a, bb);
        __m512i codes = QuantizeBF16x64(tab, a, bb);
        if (c + 64 <= c1) {
          _mm512_storeu_si512(dst + c, codes);
        } else {
          _mm512_mask_storeu_epi8(dst + c, Mask64(c1 - c), codes);
        }
      }
    }
  }
  return true;
}

}  // namespace

// Runs the strip as sub-strips of at most 8 blocks (fp32: 512 KiB, so one being quantized and
// the next being prefetched fit in a 2 MiB L2 with room to spare), prefetching for each the next
// sub-strip, or the start of the next work item (same order as ConvertWithPath's).
template <DType kSrc>
bool Fp8StripPrefetched(const ConvertJob& job, int64_t block_row, int64_t bc_begin,
                        int64_t bc_end) {
  constexpr int64_t kSub = kSrc == DType::kF32 ? 4 : 8;
  const int64_t block_cols = CeilDiv(job.cols, kFp8BlockSize);
  const int64_t block_rows = CeilDiv(job.rows, kFp8BlockSize);
  for (int64_t b0 = bc_begin; b0 < bc_end; b0 += kSub) {
    const int64_t b1 = std::min(bc_end, b0 + kSub);
    PrefetchRegion next;
    int64_t next_row = block_row;
    int64_t next_b0 = b1;
    if (next_b0 >= block_cols) {
      next_row = block_row + 1;
      next_b0 = 0;
    }
    if (next_row < block_rows) {
      next.row_begin = next_row * kFp8BlockSize;
      next.row_end = std::min(job.rows, next.row_begin + kFp8BlockSize);
      next.col_begin = next_b0 * kFp8BlockSize;
      next.col_end = std::min(job.cols, (next_b0 + kSub) * kFp8BlockSize);
    }
    if (!Fp8Strip<kSrc>(job, block_row, b0, b1, next)) return false;
  }
  return true;
}

bool Avx512Fp8Strip(const ConvertJob& job, int64_t block_row, int64_t bc_begin, int64_t bc_end) {
  switch (job.src_dtype) {
    case DType::kBF16:
      return Fp8StripPrefetched<DType::kBF16>(job, block_row, bc_begin, bc_end);
    case DType::kF32:
      return Fp8StripPrefetched<DType::kF32>(job, block_row, bc_begin, bc_end);
    default:
      return Avx2Fp8Strip(job, block_row, bc_begin, bc_end);
  }
}

WS_AVX512 void Avx512EncodeE4M3(const float* in, uint8_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm512_cvtepi32_epi8(EncodeE4M3x16(_mm512_loadu_ps(in + i))));
  }
  for (; i < n; ++i) out[i] = FloatToE4M3(in[i]);
}

WS_AVX512 void Avx512QuantizeBF16(const uint16_t* in, uint8_t* out, int64_t n, float scale) {
  Fp8Tables tab;
  BuildTables(scale, tab);
  for (int64_t i = 0; i < n; i += 64) {
    __m512i a, b;
    LoadBF16x64<DType::kBF16>(in, i, n - i, a, b);
    _mm512_mask_storeu_epi8(out + i, Mask64(n - i), QuantizeBF16x64(tab, a, b));
  }
}

#else  // no AVX-512 kernels in this build

bool Avx512Supported() { return false; }
bool Avx512Fp8Strip(const ConvertJob&, int64_t, int64_t, int64_t) { return false; }
void Avx512EncodeE4M3(const float* in, uint8_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToE4M3(in[i]);
}
void Avx512QuantizeBF16(const uint16_t* in, uint8_t* out, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) out[i] = QuantizeE4M3(BF16ToFloat(in[i]), scale);
}

#endif

}  // namespace weightsync::convert_internal
