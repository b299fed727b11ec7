// Bit-exact conversions between fp32 and the 16-bit float formats.
//
// These are the scalar definitions every fast path (SIMD, CUDA) is tested against. Rounding is
// round-to-nearest-even, as in PyTorch's .to(torch.bfloat16) and IEEE 754 binary16 casts. NaN stays
// NaN (quiet), infinities stay infinities.
#pragma once

#include <bit>
#include <cstdint>

namespace weightsync {

inline float BitsToFloat(uint32_t bits) { return std::bit_cast<float>(bits); }
inline uint32_t FloatToBits(float f) { return std::bit_cast<uint32_t>(f); }

inline float BF16ToFloat(uint16_t bf16) { return BitsToFloat(static_cast<uint32_t>(bf16) << 16); }

inline uint16_t FloatToBF16(float f) {
  uint32_t bits = FloatToBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep sign, force a quiet payload
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
  uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

// IEEE binary16 -> fp32 (exact).
float HalfToFloat(uint16_t half);
// fp32 -> IEEE binary16, round to nearest even, overflow to infinity.
uint16_t FloatToHalf(float f);

}  // namespace weightsync
