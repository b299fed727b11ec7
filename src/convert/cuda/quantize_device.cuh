// Device-side arithmetic of the conversion kernel, shared with the exhaustive GPU tests so that
// they check exactly the code the kernel runs. Why each piece is exact:
// docs/conversion-numerics.md.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "convert/cuda/e4m3_port.h"

namespace weightsync::cuda_convert {

inline constexpr float kDeviceE4M3Max = 448.0f;
inline constexpr float kDeviceMinScale = 1e-12f;

// fp32 -> bf16 bits in the high half, round to nearest even: FloatToBF16's integer rounding
// (refused values, NaN among them, never reach an output that matters).
__device__ __forceinline__ uint32_t RoundToBF16Bits(uint32_t bits) {
  return (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
}

__device__ __forceinline__ float HalfBitsToFloat(uint32_t half_bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(half_bits)));
}

// scale = max(amax / 448, 1e-12): one IEEE division, as Fp8Scale on the host.
__device__ __forceinline__ float DeviceFp8Scale(float amax) {
  return fmaxf(__fdiv_rn(amax, kDeviceE4M3Max), kDeviceMinScale);
}

// x / scale, correctly rounded, with the sign of x (also for x = -0). inv must be
// __frcp_rn(scale). With y = RN(1/b) and q0 = RN(a * y) within an ulp of a/b, the remainder
// r = a - q0*b is exact in an FMA and RN(q0 + r*y) is RN(a/b) (Markstein), as long as the
// quotient is an fp32 normal; smaller quotients (< 2^-126) encode to (signed) zero either way.
// Every step rounds to nearest even, which is symmetric in the sign, so the quotient of -x is
// minus that of x; only x = -0 comes out +0 (r = +0 - 0), hence the sign OR. The GPU test
// compares the whole pair quantizer with __fdiv_rn for every (bf16 or fp16 value, block amax)
// pair, both signs.
__device__ __forceinline__ float ScaledQuotient(float x, float scale, float inv) {
  const float q0 = __fmul_rn(x, inv);
  const float r = __fmaf_rn(-q0, scale, x);
  const float q = __fmaf_rn(r, inv, q0);
  return __uint_as_float(__float_as_uint(q) | (__float_as_uint(x) & 0x80000000u));
}

// Two values to e4m3fn codes (lo in bits 0-7, hi in 8-15) with the hardware converter: round to
// nearest even, subnormals kept, sign-magnitude (code(-y) = code(y) | 0x80, -0 too), and
// magnitudes past 448 saturated to 448 (.satfinite): the same codes as min(|y|, 448) encoded,
// since RN to e4m3 takes [448, 464) to 448 and .satfinite takes the rest there. Tested against
// PortFloatToE4M3 on every fp32 in [0, 448].
__device__ __forceinline__ uint32_t EncodeE4M3Pair(float lo, float hi) {
  unsigned short out;
  // PTX: the first source operand goes to the upper byte.
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(out) : "f"(hi), "f"(lo));
  return out;
}

// The host's QuantizeE4M3 written the plain way (IEEE division, clamp, integer encoder), for
// the exhaustive tests only.
__device__ __forceinline__ uint8_t ReferenceQuantize(float x, float scale) {
  const float y = fminf(fmaxf(__fdiv_rn(x, scale), -kDeviceE4M3Max), kDeviceE4M3Max);
  return PortFloatToE4M3(__float_as_uint(y));
}

// What the kernel computes for a pair of 16-bit values (bf16 when `half` is false, else fp16)
// packed in one word: two codes, lo in bits 0-7 and hi in bits 8-15. The quotients are at most
// 448 (1 + 2^-23) in magnitude (|x| <= amax, scale = RN(amax / 448)), so the encoder's
// saturation is the reference's clamp to 448.
template <bool kHalf>
__device__ __forceinline__ uint32_t QuantizePair(uint32_t word, float scale, float inv) {
  const float lo = kHalf ? HalfBitsToFloat(word & 0xffffu) : __uint_as_float(word << 16);
  const float hi = kHalf ? HalfBitsToFloat(word >> 16) : __uint_as_float(word & 0xffff0000u);
  return EncodeE4M3Pair(ScaledQuotient(lo, scale, inv), ScaledQuotient(hi, scale, inv));
}

}  // namespace weightsync::cuda_convert
