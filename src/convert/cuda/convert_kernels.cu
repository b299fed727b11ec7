// The conversion kernel: one launch converts every job of a batch. Work is a flat sequence of
// 128x128 tiles (the FP8 quantization block) over all jobs; the grid is persistent (as many CTAs
// as fit on the GPU at once) and CTA b converts a contiguous share of the tiles (WorkStart,
// work_partition.h), walking it in order with a cursor, so no tile searches for its job.
//
// A CTA of 512 threads converts one tile at a time: thread t owns the 8-column chunk t % 16 of
// rows t / 16 + 32k (k = 0..3), so each warp covers two rows of the tile contiguously. Sources
// come through a ring of kStages shared-memory stages filled by cp.async: while a tile is
// converted, the next kStages - 1 tiles are already on their way, and those bytes in flight hold
// no registers (the kernel is limited by memory latency otherwise: with loads into registers, a
// CTA had nothing in flight while it reduced and quantized). Each thread reads back only the
// stage slots it filled itself, so the ring needs no barrier: cp.async.wait_group orders a
// thread's own copies before its reads, and a slot is refilled only after its reader consumed it.
//
// FP8 tiles: every source is kept as 16-bit values (bf16, fp16, or fp32 already rounded to bf16
// by the value rule), reduced to the block amax (one barrier per tile), then quantized from
// registers. Casts are elementwise, pass by pass.
#include <cuda_runtime.h>

#include "convert/cuda/device_job.h"
#include "convert/cuda/quantize_device.cuh"

// Pipeline depth for batches of 16-bit sources; set on the compiler command line only for
// experiments (bench/results). Batches with fp32 sources use at most 3 stages (3 x 64 KiB of the
// 227 KiB a CTA may have).
#ifndef WS_CONVERT_STAGES
#define WS_CONVERT_STAGES 3
#endif

namespace weightsync::cuda_convert {
namespace {

constexpr int kStages16 = WS_CONVERT_STAGES;
constexpr int kStages32 = WS_CONVERT_STAGES < 3 ? WS_CONVERT_STAGES : 3;
constexpr int kChunk = 8;                                         // elements per thread access
constexpr int kRowsPerPass = kThreadsPerTile / (kTile / kChunk);  // 32
constexpr int kPasses = kTile / kRowsPerPass;                     // 4
constexpr int kWarps = kThreadsPerTile / 32;
static_assert(kStageBytes16 == kPasses * kThreadsPerTile * 16);
static_assert(kStages32 >= 2);

// fp32 magnitudes from here up round to Inf in bf16 (convert_internal::kBF16OverflowBits).
constexpr uint32_t kBF16OverflowBits = 0x7f7f8000u;
constexpr uint32_t kNonFiniteBits = 0x7f800000u;

// ---- cp.async: 16 bytes from global to shared memory without passing through registers.

// Copies `bytes` (0..16) from `global` and zero-fills the rest of the 16-byte slot. Both
// addresses 16-byte aligned.
__device__ __forceinline__ void CopyAsync16(uint4* slot, const void* global, int bytes) {
  const uint32_t shared = static_cast<uint32_t>(__cvta_generic_to_shared(slot));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared), "l"(global),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void CommitCopies() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most `kPending` of this thread's most recent copy groups are still in flight.
template <int kPending>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// ---- Where things are.

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

// A CTA's position in its share: the current tile of the current job. Advance() is only called
// while the share has tiles left, so it never steps past the work list. 32-bit fields: a batch
// has fewer than 2^31 tiles (Enqueue checks), and two cursors stay live across the whole loop.
struct TileCursor {
  int job;
  int tile_row, tile_col;
  int tile_rows, tile_cols;  // the job's tile grid

  __device__ __forceinline__ TileCursor(const DeviceJob* jobs, const WorkStart& start)
      : job(start.job) {
    Shape(jobs);
    tile_row = static_cast<int>(start.tile / tile_cols);
    tile_col = static_cast<int>(start.tile % tile_cols);
  }
  __device__ __forceinline__ void Shape(const DeviceJob* jobs) {
    tile_rows = static_cast<int>((jobs[job].rows + kTile - 1) / kTile);
    tile_cols = static_cast<int>((jobs[job].cols + kTile - 1) / kTile);
  }
  __device__ __forceinline__ void Advance(const DeviceJob* jobs) {
    if (++tile_col < tile_cols) return;
    tile_col = 0;
    if (++tile_row < tile_rows) return;
    tile_row = 0;
    ++job;
    Shape(jobs);
  }
};

// A thread's slots in one stage: slot s of thread t is the 16 bytes at (s * 512 + t) * 16, so a
// warp's accesses to one slot are 512 contiguous bytes (no bank conflicts). 16-bit sources use
// slots 0..3 (one per pass), fp32 sources slots 0..7 (two per pass).
__device__ __forceinline__ uint4* ThreadSlots(unsigned char* stage) {
  return reinterpret_cast<uint4*>(stage) + threadIdx.x;
}
constexpr int kSlotStride = kThreadsPerTile;  // in uint4

// ---- Loading a tile into its stage.

// Element loads for jobs whose rows are not 16-byte aligned (shifted pointers, odd strides):
// eight 16-bit values (element i in bits 16*(i%2) of word i/2), zeros past the row end.
__device__ __forceinline__ uint4 LoadElements16(const uint16_t* p, int n) {
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < n) w[i / 2] |= static_cast<uint32_t>(p[i]) << (16 * (i % 2));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ uint4 LoadElements32(const uint32_t* p, int first, int n) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) w[i] = first + i < n ? p[first + i] : 0u;
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Starts loading the thread's part of a tile into its slots (zeros where the tile passes the
// job's edge). Aligned jobs go through cp.async; the others load synchronously.
template <bool kWide>  // fp32 source
__device__ __forceinline__ void FetchTile(const DeviceJob& job, int64_t tile_row,
                                          int64_t tile_col, uint4* slots) {
  const ChunkPlace place = PlaceChunk(job, tile_row, tile_col);
  const bool vector = job.flags & kSrcVector;
  const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    const bool live = row < job.rows && place.n > 0;
    if constexpr (kWide) {
      uint4* lo = slots + (2 * pass) * kSlotStride;
      uint4* hi = slots + (2 * pass + 1) * kSlotStride;
      if (!live) {
        *lo = *hi = zero;
        continue;
      }
      const uint32_t* p = static_cast<const uint32_t*>(job.src) + row * job.src_stride + place.col;
      if (vector) {
        CopyAsync16(lo, p, 4 * min(place.n, 4));
        if (place.n > 4) {
          CopyAsync16(hi, p + 4, 4 * (place.n - 4));
        } else {
          *hi = zero;
        }
      } else {
        *lo = LoadElements32(p, 0, place.n);
        *hi = LoadElements32(p, 4, place.n);
      }
    } else {
      uint4* slot = slots + pass * kSlotStride;
      if (!live) {
        *slot = zero;
        continue;
      }
      const uint16_t* p = static_cast<const uint16_t*>(job.src) + row * job.src_stride + place.col;
      if (vector) {
        CopyAsync16(slot, p, 2 * place.n);
      } else {
        *slot = LoadElements16(p, place.n);
      }
    }
  }
}

// ---- Shared arithmetic.

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
}

// ---- Converting a tile from its stage.

// One 128x128 FP8 block: amax, scale, codes.
template <int kSrc>
__device__ __forceinline__ void Fp8Tile(const DeviceJob& job, int64_t tile_row, int64_t tile_col,
                                        const uint4* slots, unsigned long long* first_refused,
                                        uint32_t* warp_max) {
  const ChunkPlace place = PlaceChunk(job, tile_row, tile_col);
  uint4 values[kPasses];  // 16-bit values after the value rule (zeros outside the job)
  uint32_t raw_max = 0;   // fp32 sources: max magnitude before rounding to bf16
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    if constexpr (kSrc == kSrcF32) {
      const uint4 a = slots[(2 * pass) * kSlotStride];
      const uint4 b = slots[(2 * pass + 1) * kSlotStride];
      raw_max = Max32(Max32(raw_max, a), b);
      values[pass] = make_uint4(PackBF16(a.x, a.y), PackBF16(a.z, a.w), PackBF16(b.x, b.y),
                                PackBF16(b.z, b.w));
    } else {
      values[pass] = slots[pass * kSlotStride];
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
  const uint32_t block_max = __reduce_max_sync(0xffffffffu, warp_max[lane % kWarps]);
  float amax;
  if constexpr (kSrc == kSrcBF16) amax = __uint_as_float(block_max << 16);
  if constexpr (kSrc == kSrcF16) amax = HalfBitsToFloat(block_max);
  // Rounding is monotonic, so the rounded max is the max of the rounded values.
  if constexpr (kSrc == kSrcF32) amax = __uint_as_float(RoundToBF16Bits(block_max));
  const float scale = DeviceFp8Scale(amax);
  if (threadIdx.x == 0) job.scales[tile_row * job.scale_stride + tile_col] = scale;
  const float inv = __frcp_rn(scale);

  constexpr bool kHalf = kSrc == kSrcF16;
  const bool vector = place.n == kChunk && (job.flags & kDstVector);
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
    if (vector) {
      __stcs(reinterpret_cast<uint2*>(out), make_uint2(lo, hi));
    } else {
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        if (i < place.n) out[i] = static_cast<uint8_t>((i < 4 ? lo : hi) >> (8 * (i % 4)));
      }
    }
  }
  // Last, so no tile data is live across the call: the output is undefined after a refusal.
  if (refused) {
    ReportRefused<kSrc, kDstF8>(&job, place.row0, place.col, place.n, first_refused);
  }
}

// fp32 bits of 16-bit value `half_index` (0 or 1) of `word`, widened exactly.
template <int kSrc>
__device__ __forceinline__ uint32_t Widen(uint32_t word, int half_index) {
  const uint32_t bits16 = half_index ? word >> 16 : word & 0xffffu;
  if constexpr (kSrc == kSrcF16) return __float_as_uint(HalfBitsToFloat(bits16));
  return bits16 << 16;
}

// One 128x128 tile of an elementwise cast (no block structure; the tiling keeps one kernel).
// A pass holding a refused value is written all the same (the batch's output is undefined after
// a refusal); the refusal report comes last so no data is live across its call.
template <int kSrc, int kDst>
__device__ __forceinline__ void CastTile(const DeviceJob& job, int64_t tile_row, int64_t tile_col,
                                         const uint4* slots, unsigned long long* first_refused) {
  const ChunkPlace place = PlaceChunk(job, tile_row, tile_col);
  const bool vector = place.n == kChunk && (job.flags & kDstVector);
  bool refused = false;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int64_t row = place.row0 + pass * kRowsPerPass;
    if (row >= job.rows || place.n == 0) continue;
    uint32_t v[kChunk];  // fp32 bits: widened exactly, or the raw fp32 source
    if constexpr (kSrc == kSrcF32) {
      const uint4 a = slots[(2 * pass) * kSlotStride];
      const uint4 b = slots[(2 * pass + 1) * kSlotStride];
      refused |= Max32(Max32(0, a), b) >= (kDst == kDstF32 ? kNonFiniteBits : kBF16OverflowBits);
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
      v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
      const uint4 a = slots[pass * kSlotStride];
      const uint32_t pair_max = Max16x2(0, a);
      refused |=
          max(pair_max & 0xffffu, pair_max >> 16) >= (kSrc == kSrcBF16 ? 0x7f80u : 0x7c00u);
      const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int i = 0; i < kChunk; ++i) v[i] = Widen<kSrc>(w[i / 2], i % 2);
    }
    if constexpr (kDst == kDstF32) {
      uint32_t* out = static_cast<uint32_t*>(job.dst) + row * job.dst_stride + place.col;
      if (vector) {
        __stcs(reinterpret_cast<uint4*>(out), make_uint4(v[0], v[1], v[2], v[3]));
        __stcs(reinterpret_cast<uint4*>(out) + 1, make_uint4(v[4], v[5], v[6], v[7]));
      } else {
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          if (i < place.n) out[i] = v[i];
        }
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
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          if (i < place.n) out[i] = static_cast<uint16_t>(h[i]);
        }
      }
    }
  }
  if (refused) {
    ReportRefused<kSrc, kDst>(&job, place.row0, place.col, place.n, first_refused);
  }
}

// ---- The kernel.

__device__ __forceinline__ void Fetch(const DeviceJob* jobs, const TileCursor& at,
                                      unsigned char* stage) {
  const DeviceJob& job = jobs[at.job];
  if (job.src_type == kSrcF32) {
    FetchTile<true>(job, at.tile_row, at.tile_col, ThreadSlots(stage));
  } else {
    FetchTile<false>(job, at.tile_row, at.tile_col, ThreadSlots(stage));
  }
}

// Converts the tile at `at` from its stage. `fp8_parity` picks the warp-max copy of FP8 tiles
// and flips on each: two copies let one barrier per FP8 tile suffice, since a warp can only
// write a copy again after every warp passed the barrier of the FP8 tile in between, which
// follows their reads of it.
__device__ __forceinline__ void Convert(const DeviceJob* jobs, const TileCursor& at,
                                        unsigned char* stage, unsigned long long* first_refused,
                                        uint32_t (&warp_max)[2][kWarps], int& fp8_parity) {
  const DeviceJob& job = jobs[at.job];  // fields are read where used, not held in registers
  const uint4* slots = ThreadSlots(stage);
  unsigned long long* refused = first_refused + at.job;
  const int64_t r = at.tile_row, c = at.tile_col;
  switch (job.src_type * 3 + job.dst_type) {
    case kSrcBF16 * 3 + kDstF8:
      Fp8Tile<kSrcBF16>(job, r, c, slots, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcF16 * 3 + kDstF8:
      Fp8Tile<kSrcF16>(job, r, c, slots, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcF32 * 3 + kDstF8:
      Fp8Tile<kSrcF32>(job, r, c, slots, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcBF16 * 3 + kDstBF16:
      CastTile<kSrcBF16, kDstBF16>(job, r, c, slots, refused);
      break;
    case kSrcF16 * 3 + kDstBF16:
      CastTile<kSrcF16, kDstBF16>(job, r, c, slots, refused);
      break;
    case kSrcF32 * 3 + kDstBF16:
      CastTile<kSrcF32, kDstBF16>(job, r, c, slots, refused);
      break;
    case kSrcBF16 * 3 + kDstF32:
      CastTile<kSrcBF16, kDstF32>(job, r, c, slots, refused);
      break;
    case kSrcF16 * 3 + kDstF32:
      CastTile<kSrcF16, kDstF32>(job, r, c, slots, refused);
      break;
    default:
      CastTile<kSrcF32, kDstF32>(job, r, c, slots, refused);
      break;
  }
}

// Two CTAs per multiprocessor (64 registers a thread) when their stages fit: 2 x 3 x 32 KiB for
// 16-bit sources; one with fp32 sources (3 x 64 KiB).
template <int kStages>
__global__ void __launch_bounds__(kThreadsPerTile, 2)
    ConvertKernel(const DeviceJob* __restrict__ jobs, const WorkStart* __restrict__ starts,
                  int stage_bytes, unsigned long long* first_refused) {
  extern __shared__ uint4 stage_memory[];
  __shared__ uint32_t warp_max[2][kWarps];
  const WorkStart share = starts[blockIdx.x];
  if (share.count <= 0) return;
  unsigned char* const ring = reinterpret_cast<unsigned char*>(stage_memory);

  // Tiles are fetched kStages - 1 ahead of the one converted; a copy group is committed for
  // every fetch slot, empty past the share's end, so wait_group counts stay uniform.
  TileCursor fetch_at(jobs, share);
  TileCursor convert_at = fetch_at;
  int fetched = 0;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (fetched < share.count) {
      Fetch(jobs, fetch_at, ring + s * stage_bytes);
      if (++fetched < share.count) fetch_at.Advance(jobs);
    }
    CommitCopies();
  }
  int fetch_stage = kStages - 1, convert_stage = 0, fp8_parity = 0;
  for (int k = 0; k < share.count; ++k) {
    // The stage refilled here is the one converted in the previous iteration.
    if (fetched < share.count) {
      Fetch(jobs, fetch_at, ring + fetch_stage * stage_bytes);
      if (++fetched < share.count) fetch_at.Advance(jobs);
    }
    CommitCopies();
    fetch_stage = fetch_stage + 1 == kStages ? 0 : fetch_stage + 1;
    WaitCopies<kStages - 1>();  // this thread's copies of tile k have landed
    Convert(jobs, convert_at, ring + convert_stage * stage_bytes, first_refused, warp_max,
            fp8_parity);
    convert_stage = convert_stage + 1 == kStages ? 0 : convert_stage + 1;
    if (k + 1 < share.count) convert_at.Advance(jobs);
  }
}

// The kernel for a batch whose stages are `stage_bytes` large, and its shared memory.
auto KernelFor(int stage_bytes) {
  return stage_bytes > kStageBytes16 ? ConvertKernel<kStages32> : ConvertKernel<kStages16>;
}
size_t SharedBytes(int stage_bytes) {
  return static_cast<size_t>(stage_bytes > kStageBytes16 ? kStages32 : kStages16) *
         static_cast<size_t>(stage_bytes);
}

}  // namespace

int PrepareConvertKernel(int stage_bytes, int* blocks_per_multiprocessor) {
  const auto kernel = KernelFor(stage_bytes);
  const size_t shared = SharedBytes(stage_bytes);
  cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared));
  if (error != cudaSuccess) return static_cast<int>(error);
  error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_multiprocessor, kernel,
                                                        kThreadsPerTile, shared);
  return static_cast<int>(error);
}

int LaunchConvertKernel(const DeviceJob* jobs, const WorkStart* starts, int num_blocks,
                        int stage_bytes, unsigned long long* first_refused, CudaStream stream) {
  if (num_blocks <= 0) return cudaSuccess;
  KernelFor(stage_bytes)<<<static_cast<unsigned>(num_blocks), kThreadsPerTile,
                           SharedBytes(stage_bytes), stream>>>(jobs, starts, stage_bytes,
                                                               first_refused);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace weightsync::cuda_convert
