#include <cuda_runtime.h>

#include "convert/cuda/gpu_test_kernels.h"
#include "convert/cuda/quantize_device.cuh"

namespace weightsync::cuda_convert {
namespace {

struct Counter {
  unsigned long long checked;
  unsigned long long mismatches;
  unsigned long long example;
};

__device__ void Record(Counter* counter, unsigned long long example) {
  atomicAdd(&counter->mismatches, 1ull);
  counter->example = example;  // any one of them
}

__global__ void EncoderKernel(Counter* counter) {
  const uint64_t end = 0x43e00000ull;  // 448
  unsigned long long checked = 0;
  for (uint64_t bits = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; bits <= end;
       bits += uint64_t{gridDim.x} * blockDim.x) {
    const float f = __uint_as_float(static_cast<uint32_t>(bits));
    const uint32_t want = PortFloatToE4M3(static_cast<uint32_t>(bits));
    // f in byte 0 (low byte of the first converter) and byte 3 (high byte of the second);
    // 1.0 and 0.5 between.
    const uint32_t quad = EncodeE4M3Quad(f, 1.0f, 0.5f, f);
    if ((quad & 0xffu) != want || (quad >> 24) != want || ((quad >> 8) & 0xffffu) != 0x3038u) {
      Record(counter, bits);
    }
    ++checked;
  }
  atomicAdd(&counter->checked, checked);
}

template <bool kHalf>
__global__ void QuantizerKernel(Counter* counter, uint32_t max_bits) {
  // Index: amax magnitude bits in the high 16, x magnitude bits in the low 16.
  const uint64_t count = uint64_t{max_bits + 1} << 16;
  unsigned long long checked = 0;
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < count;
       i += uint64_t{gridDim.x} * blockDim.x) {
    const uint32_t amax_bits = static_cast<uint32_t>(i >> 16);
    const uint32_t x_bits = static_cast<uint32_t>(i & 0xffffu);
    if (x_bits > amax_bits) continue;
    const float amax = kHalf ? HalfBitsToFloat(amax_bits) : __uint_as_float(amax_bits << 16);
    const float x = kHalf ? HalfBitsToFloat(x_bits) : __uint_as_float(x_bits << 16);
    const float scale = DeviceFp8Scale(amax);
    const float inv = __frcp_rn(scale);
    // +x, -x, -x, +x: each sign in each position of a word and of the encoder's byte pairs.
    const uint32_t plus_minus = x_bits | ((x_bits | 0x8000u) << 16);
    const uint32_t codes =
        QuantizeWords<kHalf>(plus_minus, (plus_minus >> 16) | (plus_minus << 16), scale, inv);
    const uint32_t plus = ReferenceQuantize(x, scale), minus = ReferenceQuantize(-x, scale);
    const uint32_t want = plus | minus << 8 | minus << 16 | plus << 24;
    if (codes != want) Record(counter, (uint64_t{amax_bits} << 16) | x_bits);
    ++checked;
  }
  atomicAdd(&counter->checked, checked);
}

// Every fp32 bit pattern, both signs, in both halves of the bf16 pair converter: RoundToBF16Bits
// below the bf16 overflow bound, a refusable half (Inf or NaN) from there up.
__global__ void BF16PairKernel(Counter* counter) {
  const uint64_t end = uint64_t{1} << 31;  // magnitudes; the sign is added below
  unsigned long long checked = 0;
  for (uint64_t bits = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; bits < end;
       bits += uint64_t{gridDim.x} * blockDim.x) {
    const uint32_t plus = static_cast<uint32_t>(bits), minus = plus | 0x80000000u;
    const uint32_t a = PackBF16Pair(plus, minus), b = PackBF16Pair(minus, plus);
    bool ok;
    if (plus < 0x7f7f8000u) {
      const uint32_t want = (RoundToBF16Bits(plus) >> 16) | RoundToBF16Bits(minus);
      ok = a == want && b == ((want >> 16) | (want << 16));
    } else {
      ok = (a & 0x7fffu) >= 0x7f80u && ((a >> 16) & 0x7fffu) >= 0x7f80u &&
           (b & 0x7fffu) >= 0x7f80u && ((b >> 16) & 0x7fffu) >= 0x7f80u;
    }
    if (!ok) Record(counter, bits);
    ++checked;
  }
  atomicAdd(&counter->checked, checked);
}

__device__ uint64_t Mix(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void FillKernel(void* dst, int64_t count, int dtype, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const uint64_t r = Mix(seed + static_cast<uint64_t>(i));
    // Exponent 115..139 (2^-12..2^12), random mantissa and sign: finite in every dtype.
    const uint32_t bits = (static_cast<uint32_t>(r >> 32) & 0x807fffffu) |
                          ((115u + static_cast<uint32_t>(r % 25)) << 23);
    if (dtype == 0) {
      static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(bits >> 16);
    } else if (dtype == 1) {
      static_cast<__half*>(dst)[i] = __float2half_rn(__uint_as_float(bits));
    } else {
      static_cast<uint32_t*>(dst)[i] = bits;
    }
  }
}

__global__ void DelayKernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

Result<SweepResult> RunSweep(void (*launch)(Counter*)) {
  Counter* counter = nullptr;
  if (cudaMalloc(&counter, sizeof(Counter)) != cudaSuccess) return Internal("cudaMalloc failed");
  cudaMemset(counter, 0, sizeof(Counter));
  launch(counter);
  cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) {
    cudaFree(counter);
    return Internal("sweep launch failed: ", cudaGetErrorString(error));
  }
  Counter host{};
  error = cudaMemcpy(&host, counter, sizeof(host), cudaMemcpyDeviceToHost);
  cudaFree(counter);
  if (error != cudaSuccess) return Internal("sweep failed: ", cudaGetErrorString(error));
  return SweepResult{host.checked, host.mismatches, host.example};
}

constexpr int kSweepBlocks = 132 * 16;

}  // namespace

Result<SweepResult> SweepEncoder() {
  return RunSweep([](Counter* c) { EncoderKernel<<<kSweepBlocks, 256>>>(c); });
}

Result<SweepResult> SweepQuantizer(bool half) {
  if (half)
    return RunSweep([](Counter* c) { QuantizerKernel<true><<<kSweepBlocks, 256>>>(c, 0x7bffu); });
  return RunSweep([](Counter* c) { QuantizerKernel<false><<<kSweepBlocks, 256>>>(c, 0x7f7fu); });
}

Result<SweepResult> SweepBF16Pair() {
  return RunSweep([](Counter* c) { BF16PairKernel<<<kSweepBlocks, 256>>>(c); });
}

Status FillRandom(void* dst, int64_t count, DType dtype, uint64_t seed, CudaStream stream) {
  const int code = dtype == DType::kBF16 ? 0 : dtype == DType::kF16 ? 1 : 2;
  FillKernel<<<132 * 8, 256, 0, stream>>>(dst, count, code, seed);
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? Status::Ok() : Internal("fill: ", cudaGetErrorString(error));
}

Status DelayStream(CudaStream stream, int microseconds) {
  int khz = 0;
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
  DelayKernel<<<1, 1, 0, stream>>>(static_cast<long long>(khz) * microseconds / 1000);
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? Status::Ok() : Internal("delay: ", cudaGetErrorString(error));
}

}  // namespace weightsync::cuda_convert
