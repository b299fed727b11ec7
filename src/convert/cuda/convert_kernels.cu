// The conversion kernel: one launch converts every job of a batch. The grid walks a flat list of
// 128x128 tiles (the FP8 quantization block); each tile finds its job by binary search over the
// jobs' first tiles, so many small tensors share one launch and a large tensor gets one CTA per
// tile (7168 x 18432 is 8064 tiles, dozens per multiprocessor).
//
// A CTA of 512 threads holds one tile in registers: thread t owns the 8-column chunk t % 16 of
// rows t / 16 + 32k (k = 0..3), so each warp reads two rows of the tile contiguously. FP8 tiles
// are read once: every source is kept as 16-bit values (bf16, fp16, or fp32 already rounded to
// bf16 by the value rule), reduced to the block amax, then quantized from registers.
#include <cuda_runtime.h>

#include "convert/cuda/device_job.h"
#include "convert/cuda/quantize_device.cuh"

namespace weightsync::cuda_convert {
namespace {

constexpr int kChunk = 8;                                         // elements per thread access
constexpr int kRowsPerPass = kThreadsPerTile / (kTile / kChunk);  // 32
constexpr int kPasses = kTile / kRowsPerPass;                     // 4
constexpr int kWarps = kThreadsPerTile / 32;

// fp32 magnitudes from here up round to Inf in bf16 (convert_internal::kBF16OverflowBits).
constexpr uint32_t kBF16OverflowBits = 0x7f7f8000u;
constexpr uint32_t kNonFiniteBits = 0x7f800000u;

// Where a thread's chunk lies: its first row, its column, and how many of its 8 columns exist.
struct ChunkPlace {
  int64_t row0;
  int64_t col;
  int n;
};

__device__ __forceinline__ ChunkPlace PlaceChunk(const DeviceJob& job, int64_t tile_row,
                                                 int64_t tile_col) {
  ChunkPlace place;
  place.row0 = tile_row * kTile + (threadIdx.x >> 4);
  place.col = tile_col * kTile + (threadIdx.x & 15) * kChunk;
  const int64_t left = job.cols - place.col;
  place.n = left <= 0 ? 0 : (left < kChunk ? static_cast<int>(left) : kChunk);
  return place;
}

// Eight 16-bit source values (element i in bits 16*(i%2) of word i/2), zeros past the row end.
// Source data is read once: streaming loads keep it from evicting anything useful.
__device__ __forceinline__ uint4 Load16(const DeviceJob& job, int64_t row, int64_t col, int n) {
  const uint16_t* p = static_cast<const uint16_t*>(job.src) + row * job.src_stride + col;
  if (n == kChunk && (job.flags & kSrcVector)) return __ldcs(reinterpret_cast<const uint4*>(p));
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < n) w[i / 2] |= static_cast<uint32_t>(p[i]) << (16 * (i % 2));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Eight fp32 source values as raw bits, zeros past the row end.
__device__ __forceinline__ void Load32(const DeviceJob& job, int64_t row, int64_t col, int n,
                                       uint4& a, uint4& b) {
  const uint32_t* p = static_cast<const uint32_t*>(job.src) + row * job.src_stride + col;
  if (n == kChunk && (job.flags & kSrcVector)) {
    a = __ldcs(reinterpret_cast<const uint4*>(p));
    b = __ldcs(reinterpret_cast<const uint4*>(p) + 1);
    return;
  }
  uint32_t w[8];
#pragma unroll
  for (int i = 0; i < kChunk; ++i) w[i] = i < n ? p[i] : 0u;
  a = make_uint4(w[0], w[1], w[2], w[3]);
  b = make_uint4(w[4], w[5], w[6], w[7]);
}

__device__ __forceinline__ uint32_t PackBF16(uint32_t lo_bits, uint32_t hi_bits) {
  return (RoundToBF16Bits(lo_bits) >> 16) | RoundToBF16Bits(hi_bits);
}

__device__ __forceinline__ uint32_t Max16x2(uint32_t acc, uint4 w) {
  acc = __vmaxu2(acc, w.x & 0x7fff7fffu);
  acc = __vmaxu2(acc, w.y & 0x7fff7fffu);
  acc = __vmaxu2(acc, w.z & 0x7fff7fffu);
  return __vmaxu2(acc, w.w & 0x7fff7fffu);
}
__device__ __forceinline__ uint32_t Max32(uint32_t acc, uint4 w) {
  acc = max(acc, w.x & 0x7fffffffu);
  acc = max(acc, w.y & 0x7fffffffu);
  acc = max(acc, w.z & 0x7fffffffu);
  return max(acc, w.w & 0x7fffffffu);
}

// The rule of FindFirstInvalid on one raw source element.
template <int kSrc, int kDst>
__device__ __forceinline__ bool IsRefused(uint32_t raw) {
  if constexpr (kSrc == kSrcBF16) return (raw & 0x7fffu) >= 0x7f80u;
  if constexpr (kSrc == kSrcF16) return (raw & 0x7fffu) >= 0x7c00u;
  return (raw & 0x7fffffffu) >= (kDst == kDstF32 ? kNonFiniteBits : kBF16OverflowBits);
}

// Rare path, taken by a thread whose chunk holds a refused value: rescan the chunk from memory
// and lower the job's first refused index (row-major over the region) to the smallest found.
template <int kSrc, int kDst>
__device__ __noinline__ void ReportRefused(DeviceJob job, ChunkPlace place,
                                           unsigned long long* first_refused) {
  unsigned long long best = kNoRefusedElement;
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    if (row >= job.rows) break;
    for (int i = 0; i < place.n; ++i) {
      const int64_t at = row * job.src_stride + place.col + i;
      const uint32_t raw = kSrc == kSrcF32 ? static_cast<const uint32_t*>(job.src)[at]
                                           : static_cast<const uint16_t*>(job.src)[at];
      if (IsRefused<kSrc, kDst>(raw)) {
        best = min(best, static_cast<unsigned long long>(row * job.cols + place.col + i));
      }
    }
  }
  atomicMin(first_refused, best);
}

// One 128x128 FP8 block: read, amax, scale, codes.
template <int kSrc>
__device__ __forceinline__ void Fp8Tile(const DeviceJob& job, int64_t tile_row, int64_t tile_col,
                                        unsigned long long* first_refused, uint32_t* warp_max) {
  const ChunkPlace place = PlaceChunk(job, tile_row, tile_col);
  uint4 values[kPasses];  // 16-bit values after the value rule
  uint32_t raw_max = 0;   // fp32 sources: max magnitude before rounding to bf16
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    values[pass] = make_uint4(0, 0, 0, 0);
    if (row < job.rows && place.n > 0) {
      if constexpr (kSrc == kSrcF32) {
        uint4 a, b;
        Load32(job, row, place.col, place.n, a, b);
        raw_max = Max32(Max32(raw_max, a), b);
        values[pass] = make_uint4(PackBF16(a.x, a.y), PackBF16(a.z, a.w), PackBF16(b.x, b.y),
                                  PackBF16(b.z, b.w));
      } else {
        values[pass] = Load16(job, row, place.col, place.n);
      }
    }
  }
  uint32_t thread_max = raw_max;
  bool refused = raw_max >= kBF16OverflowBits;
  if constexpr (kSrc != kSrcF32) {
    uint32_t pair_max = 0;
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) pair_max = Max16x2(pair_max, values[pass]);
    thread_max = max(pair_max & 0xffffu, pair_max >> 16);
    refused = thread_max >= (kSrc == kSrcBF16 ? 0x7f80u : 0x7c00u);
  }
  // Block amax: integer max of magnitude bits (order-free, like the CPU paths), warps then CTA.
  const int lane = threadIdx.x & 31;
  thread_max = __reduce_max_sync(0xffffffffu, thread_max);
  if (lane == 0) warp_max[threadIdx.x >> 5] = thread_max;
  __syncthreads();
  uint32_t block_max = __reduce_max_sync(0xffffffffu, warp_max[lane % kWarps]);
  float amax;
  if constexpr (kSrc == kSrcBF16) amax = __uint_as_float(block_max << 16);
  if constexpr (kSrc == kSrcF16) amax = HalfBitsToFloat(block_max);
  // Rounding is monotonic, so the rounded max is the max of the rounded values.
  if constexpr (kSrc == kSrcF32) amax = __uint_as_float(RoundToBF16Bits(block_max));
  const float scale = DeviceFp8Scale(amax);
  if (threadIdx.x == 0) job.scales[tile_row * job.scale_stride + tile_col] = scale;
  const float inv = __frcp_rn(scale);

  constexpr bool kHalf = kSrc == kSrcF16;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    if (row >= job.rows || place.n == 0) continue;
    const uint4 v = values[pass];
    const uint32_t lo =
        QuantizePair<kHalf>(v.x, scale, inv) | (QuantizePair<kHalf>(v.y, scale, inv) << 16);
    const uint32_t hi =
        QuantizePair<kHalf>(v.z, scale, inv) | (QuantizePair<kHalf>(v.w, scale, inv) << 16);
    uint8_t* out = static_cast<uint8_t*>(job.dst) + row * job.dst_stride + place.col;
    if (place.n == kChunk && (job.flags & kDstVector)) {
      __stcs(reinterpret_cast<uint2*>(out), make_uint2(lo, hi));
    } else {
      for (int i = 0; i < place.n; ++i) {
        out[i] = static_cast<uint8_t>((i < 4 ? lo : hi) >> (8 * (i % 4)));
      }
    }
  }
  // Last, so no tile data is live across the call: the output is undefined after a refusal.
  if (refused) ReportRefused<kSrc, kDstF8>(job, place, first_refused);
}

// fp32 bits of 16-bit value `half_index` (0 or 1) of `word`, widened exactly.
template <int kSrc>
__device__ __forceinline__ uint32_t Widen(uint32_t word, int half_index) {
  const uint32_t bits16 = half_index ? word >> 16 : word & 0xffffu;
  if constexpr (kSrc == kSrcF16) return __float_as_uint(HalfBitsToFloat(bits16));
  return bits16 << 16;
}

// One 128x128 tile of an elementwise cast (no block structure; the tiling keeps one kernel).
// The stores of a group of passes depend on the magnitude max over the whole group, so every
// load of the group is in flight at once (left alone, the compiler may sink each pass's loads
// next to its stores, one memory round trip per pass; the first measurement of casts was a third
// of the copy bandwidth). The refusal report comes last so no data is live across its call.
template <int kSrc, int kDst>
__device__ __forceinline__ void CastTile(const DeviceJob& job, int64_t tile_row, int64_t tile_col,
                                         unsigned long long* first_refused) {
  const ChunkPlace place = PlaceChunk(job, tile_row, tile_col);
  // fp32 sources go two passes at a time: four would need more registers than the FP8 paths,
  // and the whole kernel is allocated for its largest path.
  constexpr int kGroup = kSrc == kSrcF32 ? 2 : kPasses;
  bool refused = false;
#pragma unroll
  for (int first = 0; first < kPasses; first += kGroup) {
    uint4 a[kGroup], b[kGroup];  // raw source: 8 16-bit values in a, or 8 fp32 in a and b
#pragma unroll
    for (int pass = 0; pass < kGroup; ++pass) {
      const int64_t row = place.row0 + (first + pass) * kRowsPerPass;
      a[pass] = b[pass] = make_uint4(0, 0, 0, 0);
      if (row < job.rows && place.n > 0) {
        if constexpr (kSrc == kSrcF32) {
          Load32(job, row, place.col, place.n, a[pass], b[pass]);
        } else {
          a[pass] = Load16(job, row, place.col, place.n);
        }
      }
    }
    uint32_t mag_max = 0;
#pragma unroll
    for (int pass = 0; pass < kGroup; ++pass) {
      if constexpr (kSrc == kSrcF32) {
        mag_max = Max32(Max32(mag_max, a[pass]), b[pass]);
      } else {
        mag_max = Max16x2(mag_max, a[pass]);
      }
    }
    bool group_refused;
    if constexpr (kSrc == kSrcF32) {
      // Widening keeps every finite value; rounding to bf16 refuses from the overflow bound up.
      group_refused = mag_max >= (kDst == kDstF32 ? kNonFiniteBits : kBF16OverflowBits);
    } else {
      group_refused =
          max(mag_max & 0xffffu, mag_max >> 16) >= (kSrc == kSrcBF16 ? 0x7f80u : 0x7c00u);
    }
    // A group holding a refused value is not written (the output is undefined then anyway);
    // this is also what makes the stores wait for all of the group's loads.
    refused |= group_refused;
    if (group_refused) continue;
#pragma unroll
    for (int pass = 0; pass < kGroup; ++pass) {
      const int64_t row = place.row0 + (first + pass) * kRowsPerPass;
      if (row >= job.rows || place.n == 0) continue;
      uint32_t v[kChunk];  // fp32 bits: widened exactly, or the raw fp32 source
      if constexpr (kSrc == kSrcF32) {
        const uint32_t w[8] = {a[pass].x, a[pass].y, a[pass].z, a[pass].w,
                               b[pass].x, b[pass].y, b[pass].z, b[pass].w};
#pragma unroll
        for (int i = 0; i < kChunk; ++i) v[i] = w[i];
      } else {
        const uint32_t w[4] = {a[pass].x, a[pass].y, a[pass].z, a[pass].w};
#pragma unroll
        for (int i = 0; i < kChunk; ++i) v[i] = Widen<kSrc>(w[i / 2], i % 2);
      }
      const bool vector = place.n == kChunk && (job.flags & kDstVector);
      if constexpr (kDst == kDstF32) {
        uint32_t* out = static_cast<uint32_t*>(job.dst) + row * job.dst_stride + place.col;
        if (vector) {
          __stcs(reinterpret_cast<uint4*>(out), make_uint4(v[0], v[1], v[2], v[3]));
          __stcs(reinterpret_cast<uint4*>(out) + 1, make_uint4(v[4], v[5], v[6], v[7]));
        } else {
          for (int i = 0; i < place.n; ++i) out[i] = v[i];
        }
      } else {  // bf16: a bf16 source is copied, the others round to nearest even
        uint32_t h[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          h[i] = (kSrc == kSrcBF16 ? v[i] : RoundToBF16Bits(v[i])) >> 16;
        }
        uint16_t* out = static_cast<uint16_t*>(job.dst) + row * job.dst_stride + place.col;
        if (vector) {
          __stcs(reinterpret_cast<uint4*>(out), make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16,
                                                           h[4] | h[5] << 16, h[6] | h[7] << 16));
        } else {
          for (int i = 0; i < place.n; ++i) out[i] = static_cast<uint16_t>(h[i]);
        }
      }
    }
  }
  if (refused) ReportRefused<kSrc, kDst>(job, place, first_refused);
}

__global__ void __launch_bounds__(kThreadsPerTile, 2)
    ConvertKernel(const DeviceJob* __restrict__ jobs, int num_jobs, int64_t total_tiles,
                  unsigned long long* first_refused) {
  // Two copies so one __syncthreads per FP8 tile suffices: a warp can only reach the next use of
  // a copy after every warp passed the barrier that follows its last read.
  __shared__ uint32_t warp_max[2][kWarps];
  int parity = 0;
  for (int64_t tile = blockIdx.x; tile < total_tiles; tile += gridDim.x, parity ^= 1) {
    int lo = 0, hi = num_jobs - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (jobs[mid].tile_begin <= tile)
        lo = mid;
      else
        hi = mid - 1;
    }
    const DeviceJob& job = jobs[lo];  // fields are read where used, not held in registers
    const int64_t local = tile - job.tile_begin;
    const int64_t tile_row = local / job.tile_cols;
    const int64_t tile_col = local % job.tile_cols;
    unsigned long long* refused = first_refused + lo;
    switch (job.src_type * 3 + job.dst_type) {
      case kSrcBF16 * 3 + kDstF8:
        Fp8Tile<kSrcBF16>(job, tile_row, tile_col, refused, warp_max[parity]);
        break;
      case kSrcF16 * 3 + kDstF8:
        Fp8Tile<kSrcF16>(job, tile_row, tile_col, refused, warp_max[parity]);
        break;
      case kSrcF32 * 3 + kDstF8:
        Fp8Tile<kSrcF32>(job, tile_row, tile_col, refused, warp_max[parity]);
        break;
      case kSrcBF16 * 3 + kDstBF16:
        CastTile<kSrcBF16, kDstBF16>(job, tile_row, tile_col, refused);
        break;
      case kSrcF16 * 3 + kDstBF16:
        CastTile<kSrcF16, kDstBF16>(job, tile_row, tile_col, refused);
        break;
      case kSrcF32 * 3 + kDstBF16:
        CastTile<kSrcF32, kDstBF16>(job, tile_row, tile_col, refused);
        break;
      case kSrcBF16 * 3 + kDstF32:
        CastTile<kSrcBF16, kDstF32>(job, tile_row, tile_col, refused);
        break;
      case kSrcF16 * 3 + kDstF32:
        CastTile<kSrcF16, kDstF32>(job, tile_row, tile_col, refused);
        break;
      default:
        CastTile<kSrcF32, kDstF32>(job, tile_row, tile_col, refused);
        break;
    }
  }
}

}  // namespace

int LaunchConvertKernel(const DeviceJob* jobs, int num_jobs, int64_t total_tiles,
                        unsigned long long* first_refused, CudaStream stream) {
  if (total_tiles <= 0) return cudaSuccess;
  // One CTA per tile up to a grid far larger than any GPU holds at once; beyond that CTAs loop.
  const int64_t grid = total_tiles < (int64_t{1} << 30) ? total_tiles : (int64_t{1} << 30);
  ConvertKernel<<<static_cast<unsigned>(grid), kThreadsPerTile, 0, stream>>>(
      jobs, num_jobs, total_tiles, first_refused);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace weightsync::cuda_convert
