// FP8 from fp32 sources: the first kernel's register path (commit 540c3a1), kept for these jobs
// because on an H200 it does 0.67-0.70x of the copy bandwidth where the tiled kernel's
// shared-memory ring does 0.47-0.50x (bench/results/2026-11-29-gpu-convert.md).
//
// One CTA per 128x128 tile (a grid as large as the tile count, up to 2^30; a grid of resident
// CTAs striding over the tiles measured 4% slower on an H200): each thread issues
// all eight 16-byte loads of its four chunks before it reduces, so with two CTAs per
// multiprocessor 128 KiB of source is in flight per multiprocessor without shared memory. The
// tile finds its job by binary search over the jobs' first tiles (an uploaded work list). The
// values are rounded to bf16 (the value rule) as they arrive and quantized from registers.
#include <cuda_runtime.h>

#include "convert/cuda/device_job.h"
#include "convert/cuda/tile_common.cuh"

namespace weightsync::cuda_convert {
namespace {

// Eight fp32 source values as raw bits, zeros past the row end. Source data is read once:
// streaming loads keep it from evicting anything useful.
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

// One 128x128 FP8 block of an fp32 source: read, amax, scale, codes.
__device__ __forceinline__ void Fp32Fp8Tile(const DeviceJob& job, int64_t tile_row,
                                            int64_t tile_col, unsigned long long* first_refused,
                                            uint32_t* warp_max) {
  const ChunkPlace place = PlaceChunk(job.cols, tile_row, tile_col);
  uint4 values[kPasses];  // bf16 values after the value rule (zeros outside the job)
  uint32_t raw_max = 0;   // max magnitude before rounding to bf16
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    values[pass] = make_uint4(0, 0, 0, 0);
    if (row < job.rows && place.n > 0) {
      uint4 a, b;
      Load32(job, row, place.col, place.n, a, b);
      raw_max = Max32(Max32(raw_max, a), b);
      values[pass] = make_uint4(PackBF16(a.x, a.y), PackBF16(a.z, a.w), PackBF16(b.x, b.y),
                                PackBF16(b.z, b.w));
    }
  }
  const bool refused = raw_max >= kBF16OverflowBits;
  // Block amax: integer max of magnitude bits (order-free, like the CPU paths), warps then CTA.
  const int lane = threadIdx.x & 31;
  const uint32_t thread_max = __reduce_max_sync(0xffffffffu, raw_max);
  if (lane == 0) warp_max[threadIdx.x >> 5] = thread_max;
  __syncthreads();
  const uint32_t block_max = __reduce_max_sync(0xffffffffu, warp_max[lane % kWarps]);
  // Rounding is monotonic, so the rounded max is the max of the rounded values.
  const float scale = DeviceFp8Scale(__uint_as_float(RoundToBF16Bits(block_max)));
  if (threadIdx.x == 0) job.scales[tile_row * job.scale_stride + tile_col] = scale;
  const float inv = __frcp_rn(scale);

#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    if (row >= job.rows || place.n == 0) continue;
    const uint2 codes = QuantizeChunk<false>(values[pass], scale, inv);
    uint8_t* out = static_cast<uint8_t*>(job.dst) + row * job.dst_stride + place.col;
    if (place.n == kChunk && (job.flags & kDstVector)) {
      __stcs(reinterpret_cast<uint2*>(out), codes);
    } else {
      for (int i = 0; i < place.n; ++i) {
        out[i] = static_cast<uint8_t>((i < 4 ? codes.x : codes.y) >> (8 * (i % 4)));
      }
    }
  }
  // Last, so no tile data is live across the call: the output is undefined after a refusal.
  if (refused) {
    ReportRefused<kSrcF32, kDstF8>(&job, place.row0, place.col, place.n, first_refused);
  }
}

__global__ void __launch_bounds__(kThreadsPerTile, 2)
    Fp32Fp8Kernel(const DeviceJob* __restrict__ jobs, int num_jobs, int total_tiles,
                  unsigned long long* first_refused) {
  // Two copies so one __syncthreads per tile suffices: a warp can only reach the next use of a
  // copy after every warp passed the barrier that follows its last read.
  __shared__ uint32_t warp_max[2][kWarps];
  int parity = 0;
  for (int tile = static_cast<int>(blockIdx.x); tile < total_tiles;
       tile += static_cast<int>(gridDim.x), parity ^= 1) {
    const int index = SearchJob(jobs, num_jobs, tile);
    const DeviceJob& job = jobs[index];  // fields are read where used, not held in registers
    const int local = tile - job.tile_begin;
    const int tile_row = local / job.tile_cols;
    Fp32Fp8Tile(job, tile_row, local - tile_row * job.tile_cols, first_refused + index,
                warp_max[parity]);
  }
}

}  // namespace

int LaunchFp32Fp8Kernel(const DeviceJob* jobs, int num_jobs, int total_tiles,
                        unsigned long long* first_refused, CudaStream stream) {
  if (num_jobs <= 0 || total_tiles <= 0) return cudaSuccess;
  Fp32Fp8Kernel<<<static_cast<unsigned>(total_tiles), kThreadsPerTile, 0, stream>>>(
      jobs, num_jobs, total_tiles, first_refused);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace weightsync::cuda_convert
