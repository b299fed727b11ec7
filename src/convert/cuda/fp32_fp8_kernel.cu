// FP8 from fp32 sources: the first kernel's register path (commit 540c3a1), kept for these jobs
// because on an H200 it did 0.67-0.70x of the copy bandwidth where the tiled kernel's
// shared-memory ring did 0.47-0.50x (bench/results/2026-11-29-gpu-convert.md); 0.98-1.01x since
// it rounds with the hardware pair converter (bench/results/2026-11-29-gpu-convert-3.md).
//
// One CTA per 128x128 tile (a grid as large as the tile count, up to 2^30; a grid of resident
// CTAs striding over the tiles measured 4% slower on an H200): each thread issues
// all eight 16-byte loads of its four chunks before it reduces, so with two CTAs per
// multiprocessor 128 KiB of source is in flight per multiprocessor without shared memory. The
// tile finds its job by binary search over the jobs' first tiles (an uploaded work list). The
// values are rounded to bf16 (the value rule) by the hardware converter as they arrive and
// quantized from registers by the 16-bit tile code.
#include <cuda_runtime.h>

#include "convert/cuda/device_job.h"
#include "convert/cuda/tile_common.cuh"

namespace weightsync::cuda_convert {
namespace {

// Eight fp32 source values, rounded to bf16 (the value rule) as they arrive: four words of two
// bf16 each, element 0 in the low half of x, zeros past the row end. Source data is read once:
// streaming loads keep it from evicting anything useful.
__device__ __forceinline__ uint4 LoadAsBF16(const uint32_t* p, int n, bool vector) {
  uint4 a, b;
  if (n == kChunk && vector) {
    a = __ldcs(reinterpret_cast<const uint4*>(p));
    b = __ldcs(reinterpret_cast<const uint4*>(p) + 1);
  } else {
    uint32_t w[kChunk];
#pragma unroll
    for (int i = 0; i < kChunk; ++i) w[i] = i < n ? p[i] : 0u;
    a = make_uint4(w[0], w[1], w[2], w[3]);
    b = make_uint4(w[4], w[5], w[6], w[7]);
  }
  return make_uint4(PackBF16Pair(a.x, a.y), PackBF16Pair(a.z, a.w), PackBF16Pair(b.x, b.y),
                    PackBF16Pair(b.z, b.w));
}

// One 128x128 FP8 block of an fp32 source: read, amax, scale, codes. After the rounding to bf16
// this is the 16-bit tile code of convert_kernels.cu: amax and refusal of the rounded values
// (rounding is monotonic, so their amax is the rounded amax of the source, and a value is refused
// exactly where it rounds to Inf or is not finite).
__device__ __forceinline__ void Fp32Fp8Tile(const DeviceJob& job, int64_t tile_row,
                                            int64_t tile_col, unsigned long long* first_refused,
                                            uint32_t* warp_max) {
  const ChunkPlace place = PlaceChunk(job.cols, tile_row, tile_col);
  const int present_rows = Present(job.rows, place.row0, kTile);  // from row0 on, up to 128
  const uint32_t* src =
      static_cast<const uint32_t*>(job.src) + place.row0 * job.src_stride + place.col;
  const int64_t src_step = kRowsPerPass * job.src_stride;
  const bool src_vector = (job.flags & kSrcVector) != 0;
  uint4 values[kPasses];  // bf16 values after the value rule (zeros outside the job)
  if (src_vector && place.n == kChunk && present_rows > kTile - kRowsPerPass) {
    // The usual case: the thread's 4 rows and 8 columns exist and are aligned, so every pass
    // loads 32 bytes with no test.
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      values[pass] = LoadAsBF16(src + pass * src_step, kChunk, true);
    }
  } else {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      values[pass] = pass * kRowsPerPass < present_rows && place.n > 0
                         ? LoadAsBF16(src + pass * src_step, place.n, src_vector)
                         : make_uint4(0, 0, 0, 0);
    }
  }
  MaxPair16 maxima;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) FoldMax16(maxima, values[pass]);
  uint32_t thread_max = MagnitudeMax16(maxima);
  const bool refused = thread_max >= 0x7f80u;
  // Block amax: integer max of magnitude bits (order-free, like the CPU paths), warps then CTA.
  const int lane = threadIdx.x & 31;
  thread_max = __reduce_max_sync(0xffffffffu, thread_max);
  if (lane == 0) warp_max[threadIdx.x >> 5] = thread_max;
  __syncthreads();
  const uint32_t block_max = __reduce_max_sync(0xffffffffu, warp_max[lane % kWarps]);
  const float scale = DeviceFp8Scale(__uint_as_float(block_max << 16));
  if (threadIdx.x == 0) job.scales[tile_row * job.scale_stride + tile_col] = scale;
  const float inv = __frcp_rn(scale);

  const bool dst_vector = place.n == kChunk && (job.flags & kDstVector);
  uint8_t* out = static_cast<uint8_t*>(job.dst) + place.row0 * job.dst_stride + place.col;
  const int64_t dst_step = kRowsPerPass * job.dst_stride;
  if (dst_vector && present_rows > kTile - kRowsPerPass) {
    // The usual case (the thread's 4 rows and 8 columns exist, aligned): no test per pass.
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      __stcs(reinterpret_cast<uint2*>(out + pass * dst_step),
             QuantizeChunk<false>(values[pass], scale, inv));
    }
  } else {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      if (pass * kRowsPerPass >= present_rows || place.n == 0) continue;
      const uint2 codes = QuantizeChunk<false>(values[pass], scale, inv);
      uint8_t* row_out = out + pass * dst_step;
      if (dst_vector) {
        __stcs(reinterpret_cast<uint2*>(row_out), codes);
      } else {
        for (int i = 0; i < place.n; ++i) {
          row_out[i] = static_cast<uint8_t>((i < 4 ? codes.x : codes.y) >> (8 * (i % 4)));
        }
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
