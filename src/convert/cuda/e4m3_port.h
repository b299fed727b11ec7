// FloatToE4M3 (src/convert/fp8_e4m3.cc) callable on the device, on fp32 bit patterns. The GPU
// tests use it as the device-side definition when they check the kernels' hardware encoder and
// quantizer on every input; convert_gpu_test checks it against FloatToE4M3 on the host.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define WS_HOST_DEVICE __host__ __device__
#else
#define WS_HOST_DEVICE
#endif

namespace weightsync::cuda_convert {

WS_HOST_DEVICE inline uint8_t PortFloatToE4M3(uint32_t bits) {
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return 0x7f;           // NaN
  if (abs_bits >= 0x43e00000u) return sign | 0x7eu;  // >= 448: saturate
  if (abs_bits < 0x3c800000u) {                      // subnormal result: RNE(|f| * 2^9) units
    const uint32_t exponent = abs_bits >> 23;
    if (exponent < 117) return sign;
    const uint32_t mant24 = (abs_bits & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 141 - exponent;
    uint32_t q = mant24 >> shift;
    const uint32_t rest = mant24 & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) ++q;
    return static_cast<uint8_t>(sign | q);
  }
  const uint32_t rounded = abs_bits + 0x7ffffu + ((abs_bits >> 20) & 1u);
  return static_cast<uint8_t>(sign | ((rounded >> 20) - ((127u - 7u) << 3)));
}

}  // namespace weightsync::cuda_convert
