#include "convert/fp8_e4m3.h"

#include "core/float_bits.h"

namespace weightsync {

uint8_t FloatToE4M3(float f) {
  uint32_t bits = FloatToBits(f);
  uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return 0x7f;                // NaN
  if (abs_bits >= 0x43e00000u) return sign | 0x7eu;       // >= 448 (incl. inf): saturate
  if (abs_bits < 0x3c800000u) {
    // Below 2^-6 the result is subnormal (or the smallest normal, if it rounds up): an integer
    // count q of 2^-9 units, q = RNE(|f| * 2^9). |f| = mant24 * 2^(exp - 150), so
    // |f| * 2^9 = mant24 >> (141 - exp), rounded. The encoding of q in 0..8 is q itself.
    uint32_t exponent = abs_bits >> 23;
    if (exponent < 117) return sign;  // |f| < 2^-10: at most half a unit, rounds to (signed) zero
    uint32_t mant24 = (abs_bits & 0x7fffffu) | 0x800000u;
    uint32_t shift = 141 - exponent;  // 21..24
    uint32_t q = mant24 >> shift;
    uint32_t rest = mant24 & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) ++q;
    return static_cast<uint8_t>(sign | q);
  }
  // Normal: keep 3 of the 23 mantissa bits, rounding the 20 dropped bits to nearest even (a carry
  // into the exponent is the correct result), then rebias the exponent from 127 to 7.
  uint32_t rounded = abs_bits + 0x7ffffu + ((abs_bits >> 20) & 1u);
  return static_cast<uint8_t>(sign | ((rounded >> 20) - ((127u - 7u) << 3)));
}

float E4M3ToFloat(uint8_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x80u) << 24;
  uint32_t exponent = (bits >> 3) & 0xfu;
  uint32_t mantissa = bits & 0x7u;
  if (exponent == 0xf && mantissa == 0x7) return BitsToFloat(sign | 0x7fc00000u);  // NaN
  if (exponent == 0) {
    // Subnormal: mantissa * 2^-9, exact in fp32.
    float magnitude = static_cast<float>(mantissa) * BitsToFloat(0x3b000000u);  // 2^-9
    return sign ? -magnitude : magnitude;
  }
  return BitsToFloat(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

}  // namespace weightsync
