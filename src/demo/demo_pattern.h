// The value of element `i` of a demo source tensor at a training step: one definition compiled
// for the CPU (DemoWeights) and for the GPU (demo_pattern_cuda.cu), so weights generated on
// either are bit-identical. Every operation is exact or a single IEEE-rounded step (no fused
// multiply-add: the CUDA build uses --fmad=false, the host build -ffp-contract=off).
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define WS_DEMO_HD __host__ __device__ inline
#else
#define WS_DEMO_HD inline
#endif

namespace weightsync::demo::pattern {

WS_DEMO_HD uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-1, 1): 24 random bits, exactly representable.
WS_DEMO_HD float Uniform(uint64_t bits) {
  return static_cast<float>(bits >> 40) / 8388608.0f - 1.0f;
}

// Magnitudes change from one 128x128 block to the next (2^-2 down to 2^-12, so FP8 scales
// differ and small blocks reach e4m3 subnormals); one block in twelve is all zeros; every element
// moves a little each step, like an optimizer step.
WS_DEMO_HD float Value(uint64_t tensor_hash, uint64_t step, int64_t i, int64_t cols) {
  const int64_t row = i / cols, col = i % cols;
  const uint64_t block = static_cast<uint64_t>((row / 128) * 3 + (col / 128) * 5);
  const int exponent = static_cast<int>((block + tensor_hash) % 12);
  if (exponent == 11) return 0.0f;
  const uint64_t h = SplitMix64(tensor_hash ^ static_cast<uint64_t>(i));
  const float update = 0.01f * static_cast<float>(step) * Uniform(SplitMix64(h));
  const float x = Uniform(h) + update;
  // x * 2^-(exponent + 2), exact: x is far from the subnormal range.
  return x * (1.0f / static_cast<float>(1u << (exponent + 2)));
}

// fp32 -> bf16 bits, round to nearest even (the values are finite).
WS_DEMO_HD uint16_t ToBF16(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace weightsync::demo::pattern
