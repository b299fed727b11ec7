// Device code shared by the two conversion kernels (convert_kernels.cu: the tiled kernel with
// its shared-memory ring; fp32_fp8_kernel.cu: FP8 from fp32 through registers): the thread layout
// of a 128x128 tile, the value rules and the refusal report.
#pragma once

#include <cstdint>

#include "convert/cuda/device_job.h"
#include "convert/cuda/quantize_device.cuh"

namespace weightsync::cuda_convert {

// A CTA of kThreadsPerTile threads converts one tile at a time: thread t owns the 8-column chunk
// t % 16 of rows t / 16 + 32k (k = 0..3), so each warp covers two rows of the tile.
inline constexpr int kChunk = 8;                                         // elements per access
inline constexpr int kRowsPerPass = kThreadsPerTile / (kTile / kChunk);  // 32
inline constexpr int kPasses = kTile / kRowsPerPass;                     // 4
inline constexpr int kWarps = kThreadsPerTile / 32;

// fp32 magnitudes from here up round to Inf in bf16 (convert_internal::kBF16OverflowBits).
inline constexpr uint32_t kBF16OverflowBits = 0x7f7f8000u;
inline constexpr uint32_t kNonFiniteBits = 0x7f800000u;

// How many of `max` consecutive items from `first` exist below `end` (0..max).
__device__ __forceinline__ int Present(int64_t end, int64_t first, int max) {
  const int64_t left = end - first;
  return left <= 0 ? 0 : (left < max ? static_cast<int>(left) : max);
}

// The thread's chunk in tile (tile_row, tile_col) of a job with `cols` columns: its first row
// and column, and how many of its 8 columns exist.
struct ChunkPlace {
  int64_t row0;
  int64_t col;
  int n;
};

__device__ __forceinline__ ChunkPlace PlaceChunk(int64_t cols, int64_t tile_row, int64_t tile_col) {
  ChunkPlace place;
  place.row0 = tile_row * kTile + (threadIdx.x >> 4);
  place.col = tile_col * kTile + (threadIdx.x & 15) * kChunk;
  place.n = Present(cols, place.col, kChunk);
  return place;
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
// The largest magnitude bits among the sign-magnitude 16-bit values of `v`, per half, folded
// into `acc`'s two maxima: the signed maximum (start 0x80008000, -0) is the largest positive
// value if there is one, else the negative of largest magnitude; the unsigned one (start 0) is
// the negative of largest magnitude if there is one, else the largest positive. So the larger of
// their magnitudes is the largest magnitude, in two 3-operand instructions per two words where
// masking every word first took three.
struct MaxPair16 {
  uint32_t signed_max = 0x80008000u;
  uint32_t unsigned_max = 0;
};
__device__ __forceinline__ void FoldMax16(MaxPair16& acc, uint4 v) {
  acc.signed_max = __vmaxs2(__vmaxs2(acc.signed_max, v.x), v.y);
  acc.signed_max = __vmaxs2(__vmaxs2(acc.signed_max, v.z), v.w);
  acc.unsigned_max = __vmaxu2(__vmaxu2(acc.unsigned_max, v.x), v.y);
  acc.unsigned_max = __vmaxu2(__vmaxu2(acc.unsigned_max, v.z), v.w);
}
__device__ __forceinline__ uint32_t MagnitudeMax16(const MaxPair16& acc) {
  const uint32_t pair = __vmaxu2(acc.signed_max & 0x7fff7fffu, acc.unsigned_max & 0x7fff7fffu);
  return max(pair & 0xffffu, pair >> 16);
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
__device__ __noinline__ void ReportRefused(const DeviceJob* job, int64_t row0, int64_t col, int n,
                                           unsigned long long* first_refused) {
  unsigned long long best = kNoRefusedElement;
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = row0 + pass * kRowsPerPass;
    if (row >= job->rows) break;
    for (int i = 0; i < n; ++i) {
      const int64_t at = row * job->src_stride + col + i;
      const uint32_t raw = kSrc == kSrcF32 ? static_cast<const uint32_t*>(job->src)[at]
                                           : static_cast<const uint16_t*>(job->src)[at];
      if (IsRefused<kSrc, kDst>(raw)) {
        best = min(best, static_cast<unsigned long long>(row * job->cols + col + i));
      }
    }
  }
  atomicMin(first_refused, best);
  __threadfence();  // before the CTA's count in PublishRefusals
}

// Copies the work list shipped in the launch's parameters to `to` (shared memory), by every
// thread; a barrier follows.
__device__ __forceinline__ void CopyInlineJobs(const InlineJobs& args, DeviceJob* to) {
  static_assert(sizeof(DeviceJob) % 8 == 0);
  constexpr int kWords = static_cast<int>(sizeof(DeviceJob) / 8);
  const auto* from = reinterpret_cast<const uint64_t*>(args.jobs);
  for (int i = static_cast<int>(threadIdx.x); i < args.num_jobs * kWords;
       i += static_cast<int>(blockDim.x)) {
    reinterpret_cast<uint64_t*>(to)[i] = from[i];
  }
  __syncthreads();
}

// The job owning `tile`: the last whose first tile is at most `tile` (jobs in tile order).
__device__ __forceinline__ int SearchJob(const DeviceJob* jobs, int num_jobs, int tile) {
  int lo = 0, hi = num_jobs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (jobs[mid].tile_begin <= tile) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Copies the error words of `count` jobs to the host (mapped memory, visible once the launch
// completes) and resets them for the next launch, by the calling threads.
__device__ __forceinline__ void CopyOutRefusals(unsigned long long* refused,
                                                unsigned long long* host_refused, int count) {
  for (int job = static_cast<int>(threadIdx.x); job < count; job += static_cast<int>(blockDim.x)) {
    host_refused[job] = atomicExch(refused + job, kNoRefusedElement);
  }
}

// Called by every thread of every CTA at its end: the last CTA to finish copies the error words
// to the host and resets them and the counter for the next launch, so no copy before or after
// the kernel is needed.
__device__ __forceinline__ void PublishRefusals(const InlineJobs& args) {
  __shared__ bool last;
  __syncthreads();  // every refusal of this CTA is reported (and fenced)
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(args.finished_ctas, 1u) == gridDim.x - 1;
    __threadfence();
  }
  __syncthreads();
  if (!last) return;
  CopyOutRefusals(args.refused, args.host_refused, args.num_jobs);
  if (threadIdx.x == 0) *args.finished_ctas = 0;
}

// The 8 FP8 codes of a thread's chunk of 16-bit values (bf16, or fp16 when kHalf), packed in
// element order: x holds elements 0-3, y 4-7.
template <bool kHalf>
__device__ __forceinline__ uint2 QuantizeChunk(uint4 v, float scale, float inv) {
  return make_uint2(QuantizeWords<kHalf>(v.x, v.y, scale, inv),
                    QuantizeWords<kHalf>(v.z, v.w, scale, inv));
}

}  // namespace weightsync::cuda_convert
