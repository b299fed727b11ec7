// Scalar float8_e4m3fn element conversions: the definitions the quantizer and every fast path are
// tested against (docs/conversion-numerics.md).
//
// float8_e4m3fn: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits, no infinities. The largest
// finite magnitude is 448 (0x7E); S.1111.111 (0x7F, 0xFF) is NaN; the smallest normal is 2^-6 and
// subnormals reach down to 2^-9.
#pragma once

#include <cstdint>

namespace weightsync {

inline constexpr float kE4M3Max = 448.0f;

// fp32 -> e4m3fn, round to nearest, ties to even (also in the subnormal range). Finite magnitudes
// above 448 and infinities saturate to +-448 (like CUDA's __NV_SATFINITE); NaN gives 0x7F; -0.0
// gives 0x80. Independent of the floating-point environment (pure integer arithmetic).
uint8_t FloatToE4M3(float f);

// e4m3fn -> fp32, exact. 0x7F and 0xFF decode to a quiet NaN.
float E4M3ToFloat(uint8_t bits);

}  // namespace weightsync
