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

// Two fp32 values (raw bits) to bf16, `lo` in the low half, in one instruction of the hardware
// converter (cvt.rn.bf16x2.f32: round to nearest even, subnormals kept, no flush) where
// RoundToBF16Bits twice and the join took about ten. Equal to RoundToBF16Bits in each half for
// every magnitude below 0x7f7f8000 (the bf16 overflow bound); from there up (values that round
// to Inf, Inf, NaN: all refused) the half is Inf or a NaN, 0x7f80 or more in magnitude, so the
// 16-bit refusal rule finds them. The GPU test checks both on every fp32 bit pattern.
__device__ __forceinline__ uint32_t PackBF16Pair(uint32_t lo, uint32_t hi) {
  uint32_t out;
  // PTX: the first source operand goes to the upper half.
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;"
      : "=r"(out)
      : "f"(__uint_as_float(hi)), "f"(__uint_as_float(lo)));
  return out;
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
// The remainder is computed negated, n = q0*b - a (exact, and -n = r unless r = 0), because
// then the zeros get their sign with no instruction of their own: for x = -0, q0 = -0,
// n = -0*b + 0 = +0 and q = -n*y + q0 = -0 + -0 = -0, where r = a - q0*b would give
// +0*y + -0 = +0; for x = +0 every step is +0; for x != 0 and r = 0, n = +0 and
// q = -0*y + q0 = q0. Every step rounds to nearest even, symmetric in the sign, so otherwise q
// has the sign of x (an underflowing q0 is a zero with the sign of x, and then q = RN(x*y),
// still with it). The GPU test compares the kernel's quantizer with __fdiv_rn for every (bf16
// or fp16 value, block amax) pair, both signs.
__device__ __forceinline__ float ScaledQuotient(float x, float scale, float inv) {
  const float q0 = __fmul_rn(x, inv);
  const float minus_r = __fmaf_rn(q0, scale, -x);
  return __fmaf_rn(-minus_r, inv, q0);
}

// Four values to e4m3fn codes, value i in bits 8i..8i+7, with the hardware converter: round to
// nearest even, subnormals kept, sign-magnitude (code(-y) = code(y) | 0x80, -0 too), and
// magnitudes past 448 saturated to 448 (.satfinite): the same codes as min(|y|, 448) encoded,
// since RN to e4m3 takes [448, 464) to 448 and .satfinite takes the rest there. Tested against
// PortFloatToE4M3 on every fp32 in [0, 448], in bytes 0 and 3. The two 16-bit results are joined
// in PTX: through a C++ 16-bit value, each got an instruction clearing its upper half.
__device__ __forceinline__ uint32_t EncodeE4M3Quad(float v0, float v1, float v2, float v3) {
  uint32_t out;
  // PTX: the first source operand goes to the upper byte of each pair.
  asm("{\n\t.reg .b16 lo, hi;\n\t"
      "cvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\n\t"
      "cvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\n\t"
      "mov.b32 %0, {lo, hi};\n\t}"
      : "=r"(out)
      : "f"(v0), "f"(v1), "f"(v2), "f"(v3));
  return out;
}

// The host's QuantizeE4M3 written the plain way (IEEE division, clamp, integer encoder), for
// the exhaustive tests only.
__device__ __forceinline__ uint8_t ReferenceQuantize(float x, float scale) {
  const float y = fminf(fmaxf(__fdiv_rn(x, scale), -kDeviceE4M3Max), kDeviceE4M3Max);
  return PortFloatToE4M3(__float_as_uint(y));
}

// What the kernel computes for four 16-bit values (bf16 when `half` is false, else fp16),
// packed two to a word (value 0 in the low half of `a`, 3 in the high half of `b`): four codes,
// value i in bits 8i..8i+7. The quotients are at most 448 (1 + 2^-23) in magnitude
// (|x| <= amax, scale = RN(amax / 448)), so the encoder's saturation is the reference's clamp
// to 448.
template <bool kHalf>
__device__ __forceinline__ uint32_t QuantizeWords(uint32_t a, uint32_t b, float scale, float inv) {
  const uint32_t w[2] = {a, b};
  float q[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t word = w[i / 2];
    const float x = kHalf ? HalfBitsToFloat(i % 2 ? word >> 16 : word & 0xffffu)
                          : __uint_as_float(i % 2 ? word & 0xffff0000u : word << 16);
    q[i] = ScaledQuotient(x, scale, inv);
  }
  return EncodeE4M3Quad(q[0], q[1], q[2], q[3]);
}

}  // namespace weightsync::cuda_convert
