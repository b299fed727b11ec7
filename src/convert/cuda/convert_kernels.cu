// The conversion kernel: one launch converts every job of a batch. Work is a flat sequence of
// 128x128 tiles (the FP8 quantization block) over all jobs, and a table names each tile's job,
// so thousands of small tensors share one launch without searching for their jobs. A batch of
// up to kInlineJobs jobs has a kernel of its own (InlineConvertKernel, below): its jobs travel in
// the launch and no stream operation but the kernel is needed. The grid is
// persistent (as many CTAs as fit on the GPU at once) and strides over the tiles: at any moment
// the CTAs convert neighbouring tiles, so the rows of a wide matrix are read and written whole
// (a first version gave each CTA a contiguous share, which spreads the CTAs over the whole
// tensor; it was slower on 7168 x 18432, though other changes came with the switch).
//
// A CTA of 512 threads converts one tile at a time: thread t owns the 8-column chunk t % 16 of
// rows t / 16 + 32k (k = 0..3), so each warp covers two rows of the tile. Sources come through a
// ring of kStages shared-memory stages filled by cp.async: while a tile is converted, the next
// kStages - 1 tiles of the CTA are on their way, and those bytes in flight hold no registers
// (loading into registers, a CTA had nothing in flight while it reduced and quantized). Two
// stages measured best for 16-bit sources on an H200: three and four were slower, and so was a
// single stage read into registers before the refill (bench/results/2026-11-29-gpu-convert.md),
// refilling a stage as soon as its tile is in registers, and bulk (TMA) copies of whole tile
// rows (bench/results/2026-11-29-gpu-convert-2.md).
// A warp reads back only the stage slots it filled itself, so the ring needs warp barriers only.
//
// FP8 tiles of 16-bit sources are reduced to the block amax (one CTA barrier per tile), then
// quantized from registers. FP8 from fp32 is not converted here: those jobs go to the register
// kernel of fp32_fp8_kernel.cu, faster for them (convert_cuda.cc splits the batch). Casts are
// elementwise, pass by pass; fp32 casts come through stages of fp32.
#include <cuda_runtime.h>

#include <type_traits>

#include "convert/cuda/device_job.h"
#include "convert/cuda/tile_common.cuh"

namespace weightsync::cuda_convert {
namespace {

constexpr int kStages = 2;  // pipeline depth, for 16-bit and fp32 sources alike
constexpr int kSlotBytes = kThreadsPerTile * 16;  // one 16-byte slot per thread
static_assert(kStageBytes16 == kPasses * kSlotBytes);

// ---- cp.async: 16 bytes from global to shared memory without passing through registers.

// Copies `bytes` (1..16) from `global` to shared address `shared` and zero-fills the rest of
// the 16 bytes. Both addresses 16-byte aligned.
__device__ __forceinline__ void CopyAsync16(uint32_t shared, const void* global, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared), "l"(global),
               "r"(bytes)
               : "memory");
}
// The same, all 16 bytes copied.
__device__ __forceinline__ void CopyAsync16(uint32_t shared, const void* global) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared), "l"(global) : "memory");
}
__device__ __forceinline__ void StoreShared(uint32_t shared, uint4 v) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(shared), "r"(v.x), "r"(v.y),
               "r"(v.z), "r"(v.w)
               : "memory");
}
__device__ __forceinline__ uint4 LoadShared(uint32_t shared) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(shared)
               : "memory");
  return v;
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

// A tile: its job (work-list index) and its position in the job's tile grid.
struct TileAt {
  int job;
  int row, col;
};

// Through the tile table (uploaded work lists).
__device__ __forceinline__ TileAt Locate(const DeviceJob* jobs, const int* tile_jobs, int tile) {
  TileAt at;
  at.job = __ldg(tile_jobs + tile);
  const int local = tile - __ldg(&jobs[at.job].tile_begin);
  const int tile_cols = __ldg(&jobs[at.job].tile_cols);
  at.row = local / tile_cols;
  at.col = local - at.row * tile_cols;
  return at;
}

// By searching the few jobs of an inline work list (in shared memory).
__device__ __forceinline__ TileAt LocateInline(const DeviceJob* jobs, int num_jobs, int tile) {
  TileAt at;
  at.job = SearchJob(jobs, num_jobs, tile);
  const int local = tile - jobs[at.job].tile_begin;
  const int tile_cols = jobs[at.job].tile_cols;
  at.row = local / tile_cols;
  at.col = local - at.row * tile_cols;
  return at;
}

// Stage slots: slot s of thread t is the 16 bytes at s * kSlotBytes + t * 16 of the stage, so a
// warp's accesses to one slot are 512 contiguous bytes (no bank conflicts). A thread's chunk of
// pass p is in slot p (16-bit sources) or slots 2p and 2p + 1 (fp32: elements 0-3 and 4-7).

// ---- Loading a tile into its stage.

// Element loads for jobs whose rows are not 16-byte aligned (shifted pointers, odd strides):
// `n` 16-bit values (element i in bits 16*(i%2) of word i/2), or fp32 values, zeros after.
__device__ __forceinline__ uint4 LoadElements16(const uint16_t* p, int n) {
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    if (i < n) w[i / 2] |= static_cast<uint32_t>(p[i]) << (16 * (i % 2));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ uint4 LoadElements32(const uint32_t* p, int n) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) w[i] = i < n ? p[i] : 0u;
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// 16-bit sources: each thread loads its own chunks (a warp's two half-rows are contiguous).
// `stage` is the shared address of the stage. Aligned jobs go through cp.async; the others load
// synchronously; slots past the job's edge get zeros.
__device__ __forceinline__ void FetchTile16(const DeviceJob& job, const TileAt& at,
                                            uint32_t stage) {
  const ChunkPlace place = PlaceChunk(job.cols, at.row, at.col);
  const int rows = Present(job.rows, place.row0, kTile);  // rows from row0 on, up to 128
  const uint16_t* p =
      static_cast<const uint16_t*>(job.src) + place.row0 * job.src_stride + place.col;
  const int64_t pass_step = kRowsPerPass * job.src_stride;
  const uint32_t slot = stage + threadIdx.x * 16;
  if ((job.flags & kSrcVector) && place.n == kChunk && rows > kTile - kRowsPerPass) {
    // The usual case: the thread's 4 rows and 8 columns exist and are aligned, so every pass
    // copies 16 bytes (no zero fill, no tests).
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, p += pass_step) {
      CopyAsync16(slot + pass * kSlotBytes, p);
    }
    return;
  }
  // Passes whose rows exist and hold columns of the job; the rest are zeros.
  const int live = place.n == 0 ? 0 : (rows + kRowsPerPass - 1) / kRowsPerPass;
  if (job.flags & kSrcVector) {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, p += pass_step) {
      if (pass < live) {
        CopyAsync16(slot + pass * kSlotBytes, p, 2 * place.n);
      } else {
        StoreShared(slot + pass * kSlotBytes, make_uint4(0, 0, 0, 0));
      }
    }
  } else {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, p += pass_step) {
      StoreShared(slot + pass * kSlotBytes,
                  pass < live ? LoadElements16(p, place.n) : make_uint4(0, 0, 0, 0));
    }
  }
}

// fp32 sources: a thread's chunk is 32 bytes, so if each thread loaded its own, every
// instruction of a warp would touch each 32-byte sector for half of it (twice the L2 traffic).
// Instead instruction j of lane l loads 16 bytes of the warp's row 2w + j, columns 4l..4l+3,
// straight into the slot of the thread that owns them (thread 16j + l/2 of the warp, slot
// 2p + l%2); the warp then waits for its copies together (__syncwarp after the wait).
__device__ __forceinline__ void FetchTile32(const DeviceJob& job, const TileAt& at,
                                            uint32_t stage) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int64_t col = int64_t{at.col} * kTile + 4 * lane;
  const int n = Present(job.cols, col, 4);
  const int64_t row0 = int64_t{at.row} * kTile + 2 * warp;  // row of instruction 0, pass 0
  const int rows = Present(job.rows, row0, kTile);
  const uint32_t* p = static_cast<const uint32_t*>(job.src) + row0 * job.src_stride + col;
  const int64_t pass_step = kRowsPerPass * job.src_stride;
  const uint32_t slot = stage + (warp * 32 + (lane >> 1)) * 16 + (lane & 1) * kSlotBytes;
  // Rows (pass * 32 + j) that exist and hold columns of the job; the rest are zeros.
  const int live = n == 0 ? 0 : rows;
  if (job.flags & kSrcVector) {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, p += pass_step) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint32_t to = slot + 2 * pass * kSlotBytes + j * 16 * 16;
        if (pass * kRowsPerPass + j < live) {
          CopyAsync16(to, j ? p + job.src_stride : p, 4 * n);
        } else {
          StoreShared(to, make_uint4(0, 0, 0, 0));
        }
      }
    }
  } else {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, p += pass_step) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        StoreShared(slot + 2 * pass * kSlotBytes + j * 16 * 16,
                    pass * kRowsPerPass + j < live ? LoadElements32(j ? p + job.src_stride : p, n)
                                                   : make_uint4(0, 0, 0, 0));
      }
    }
  }
}

// ---- Converting a tile from its stage.

// The thread's chunk of pass p from the stage: 8 fp32 as raw bits (a, b) or 8 16-bit values (a).
template <int kSrc>
__device__ __forceinline__ void ReadChunk(uint32_t slot, int pass, uint4& a, uint4& b) {
  if constexpr (kSrc == kSrcF32) {
    a = LoadShared(slot + 2 * pass * kSlotBytes);
    b = LoadShared(slot + (2 * pass + 1) * kSlotBytes);
  } else {
    a = LoadShared(slot + pass * kSlotBytes);
  }
}

// One 128x128 FP8 block of a 16-bit source (bf16, or fp16 when kSrc is kSrcF16): amax, scale,
// codes.
template <int kSrc>
__device__ __forceinline__ void Fp8Tile(const DeviceJob* job_ptr, const TileAt& at, uint32_t stage,
                                        unsigned long long* first_refused, uint32_t* warp_max) {
  static_assert(kSrc != kSrcF32, "FP8 from fp32 is fp32_fp8_kernel.cu's");
  // The fields this tile needs, in registers (the stores below could alias the work list as far
  // as the compiler knows, which would make it reload them).
  const int64_t rows = job_ptr->rows, cols = job_ptr->cols, dst_stride = job_ptr->dst_stride;
  uint8_t* const dst = static_cast<uint8_t*>(job_ptr->dst);
  const ChunkPlace place = PlaceChunk(cols, at.row, at.col);
  const uint32_t slot = stage + threadIdx.x * 16;
  uint4 values[kPasses];  // zeros outside the job
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    uint4 unused;
    ReadChunk<kSrc>(slot, pass, values[pass], unused);
  }
  MaxPair16 maxima;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) FoldMax16(maxima, values[pass]);
  uint32_t thread_max = MagnitudeMax16(maxima);
  const bool refused = thread_max >= (kSrc == kSrcBF16 ? 0x7f80u : 0x7c00u);
  // Block amax: integer max of magnitude bits (order-free, like the CPU paths), warps then CTA.
  const int lane = threadIdx.x & 31;
  thread_max = __reduce_max_sync(0xffffffffu, thread_max);
  if (lane == 0) warp_max[threadIdx.x >> 5] = thread_max;
  __syncthreads();
  const uint32_t block_max = __reduce_max_sync(0xffffffffu, warp_max[lane % kWarps]);
  const float amax =
      kSrc == kSrcBF16 ? __uint_as_float(block_max << 16) : HalfBitsToFloat(block_max);
  const float scale = DeviceFp8Scale(amax);
  if (threadIdx.x == 0) job_ptr->scales[at.row * job_ptr->scale_stride + at.col] = scale;
  const float inv = __frcp_rn(scale);

  const bool vector = place.n == kChunk && (job_ptr->flags & kDstVector);
  const int present_rows = Present(rows, place.row0, kTile);
  uint8_t* out = dst + place.row0 * dst_stride + place.col;
  const int64_t pass_step = kRowsPerPass * dst_stride;
  if (vector && present_rows > kTile - kRowsPerPass) {
    // The usual case (the thread's 4 rows and 8 columns exist, aligned): no test per pass.
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, out += pass_step) {
      __stcs(reinterpret_cast<uint2*>(out),
             QuantizeChunk<kSrc == kSrcF16>(values[pass], scale, inv));
    }
  } else {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass, out += pass_step) {
      if (pass * kRowsPerPass >= present_rows || place.n == 0) continue;
      const uint2 codes = QuantizeChunk<kSrc == kSrcF16>(values[pass], scale, inv);
      if (vector) {
        __stcs(reinterpret_cast<uint2*>(out), codes);
      } else {
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          if (i < place.n)
            out[i] = static_cast<uint8_t>((i < 4 ? codes.x : codes.y) >> (8 * (i % 4)));
        }
      }
    }
  }
  // Last, so no tile data is live across the call: the output is undefined after a refusal.
  if (refused) {
    ReportRefused<kSrc, kDstF8>(job_ptr, place.row0, place.col, place.n, first_refused);
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
__device__ __forceinline__ void CastTile(const DeviceJob* job_ptr, const TileAt& at, uint32_t stage,
                                         unsigned long long* first_refused) {
  const int64_t rows = job_ptr->rows, cols = job_ptr->cols, dst_stride = job_ptr->dst_stride;
  using Out = std::conditional_t<kDst == kDstF32, uint32_t, uint16_t>;
  Out* const dst = static_cast<Out*>(job_ptr->dst);
  const ChunkPlace place = PlaceChunk(cols, at.row, at.col);
  const uint32_t slot = stage + threadIdx.x * 16;
  const bool vector = place.n == kChunk && (job_ptr->flags & kDstVector);
  const int present_rows = Present(rows, place.row0, kTile);
  Out* out = dst + place.row0 * dst_stride + place.col;
  const int64_t pass_step = kRowsPerPass * dst_stride;
  bool refused = false;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass, out += pass_step) {
    if (pass * kRowsPerPass >= present_rows || place.n == 0) continue;
    uint4 a, b;
    ReadChunk<kSrc>(slot, pass, a, b);
    uint32_t v[kChunk];  // fp32 bits: widened exactly, or the raw fp32 source
    if constexpr (kSrc == kSrcF32) {
      refused |= Max32(Max32(0, a), b) >= (kDst == kDstF32 ? kNonFiniteBits : kBF16OverflowBits);
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
      v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
      const uint32_t pair_max = Max16x2(0, a);
      refused |= max(pair_max & 0xffffu, pair_max >> 16) >= (kSrc == kSrcBF16 ? 0x7f80u : 0x7c00u);
      const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int i = 0; i < kChunk; ++i) v[i] = Widen<kSrc>(w[i / 2], i % 2);
    }
    if constexpr (kDst == kDstF32) {
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
    ReportRefused<kSrc, kDst>(job_ptr, place.row0, place.col, place.n, first_refused);
  }
}

// ---- The kernel.

// Fetches the tile at `at` of jobs[at.job] into `stage`.
__device__ __forceinline__ void FetchAt(const DeviceJob* jobs, const TileAt& at, uint32_t stage) {
  const DeviceJob& job = jobs[at.job];
  if (job.src_type == kSrcF32) {
    FetchTile32(job, at, stage);
  } else {
    FetchTile16(job, at, stage);
  }
}

// Converts the tile at `at` of jobs[at.job] from its stage. `fp8_parity` picks the warp-max copy
// of FP8 tiles and flips on each: two copies let one barrier per FP8 tile suffice, since a warp
// can only write a copy again after every warp passed the barrier of the FP8 tile in between,
// which follows their reads of it.
__device__ __forceinline__ void ConvertAt(const DeviceJob* jobs, const TileAt& at, uint32_t stage,
                                          unsigned long long* first_refused,
                                          uint32_t (&warp_max)[2][kWarps], int& fp8_parity) {
  const DeviceJob* job = jobs + at.job;
  unsigned long long* refused = first_refused + at.job;
  switch (job->src_type * 3 + job->dst_type) {
    case kSrcBF16 * 3 + kDstF8:
      Fp8Tile<kSrcBF16>(job, at, stage, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcF16 * 3 + kDstF8:
      Fp8Tile<kSrcF16>(job, at, stage, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcBF16 * 3 + kDstBF16:
      CastTile<kSrcBF16, kDstBF16>(job, at, stage, refused);
      break;
    case kSrcF16 * 3 + kDstBF16:
      CastTile<kSrcF16, kDstBF16>(job, at, stage, refused);
      break;
    case kSrcF32 * 3 + kDstBF16:
      CastTile<kSrcF32, kDstBF16>(job, at, stage, refused);
      break;
    case kSrcBF16 * 3 + kDstF32:
      CastTile<kSrcBF16, kDstF32>(job, at, stage, refused);
      break;
    case kSrcF16 * 3 + kDstF32:
      CastTile<kSrcF16, kDstF32>(job, at, stage, refused);
      break;
    default:
      CastTile<kSrcF32, kDstF32>(job, at, stage, refused);
      break;
  }
}

// The same for tile number `tile` of an uploaded work list, through its tile table.
__device__ __forceinline__ void Fetch(const DeviceJob* jobs, const int* tile_jobs, int tile,
                                      uint32_t stage) {
  FetchAt(jobs, Locate(jobs, tile_jobs, tile), stage);
}
__device__ __forceinline__ void Convert(const DeviceJob* jobs, const int* tile_jobs, int tile,
                                        uint32_t stage, unsigned long long* first_refused,
                                        uint32_t (&warp_max)[2][kWarps], int& fp8_parity) {
  ConvertAt(jobs, Locate(jobs, tile_jobs, tile), stage, first_refused, warp_max, fp8_parity);
}

// The kernel of uploaded work lists (more than kInlineJobs jobs), which finds each tile's job in
// the tile table. Two CTAs per multiprocessor (64 registers a thread) when their stages fit:
// 2 x 2 x 32 KiB for 16-bit sources; one with fp32 sources (2 x 64 KiB). This is the kernel of
// round 2 unchanged: the inline kernel's changes applied to it (location carried, jobs in the
// launch's parameter block, last-CTA publication) made the 256-expert stack 4-6% slower on an
// H200 (bench/results/2026-11-29-gpu-convert-2.md).
__global__ void __launch_bounds__(kThreadsPerTile, 2)
    ConvertKernel(const DeviceJob* __restrict__ jobs, const int* __restrict__ tile_jobs,
                  int total_tiles, int stage_bytes, unsigned long long* first_refused) {
  extern __shared__ uint4 stage_memory[];
  __shared__ uint32_t warp_max[2][kWarps];
  const uint32_t ring = static_cast<uint32_t>(__cvta_generic_to_shared(stage_memory));
  const int stride = static_cast<int>(gridDim.x);

  // Tiles are fetched kStages - 1 ahead of the one converted; a copy group is committed for
  // every fetch, empty past the end, so wait_group counts stay uniform.
  int fetch_tile = static_cast<int>(blockIdx.x);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (fetch_tile < total_tiles) {
      Fetch(jobs, tile_jobs, fetch_tile, ring + s * stage_bytes);
    }
    CommitCopies();
    fetch_tile += stride;
  }
  int fetch_stage = kStages - 1, convert_stage = 0, fp8_parity = 0;
  for (int tile = static_cast<int>(blockIdx.x); tile < total_tiles; tile += stride) {
    // The stage refilled here was converted in the previous iteration: every lane of the warp
    // must be done reading it (fp32 fetches write other lanes' slots).
    __syncwarp();
    if (fetch_tile < total_tiles) {
      Fetch(jobs, tile_jobs, fetch_tile, ring + fetch_stage * stage_bytes);
    }
    CommitCopies();
    fetch_tile += stride;
    fetch_stage = fetch_stage + 1 == kStages ? 0 : fetch_stage + 1;
    // This thread's copies of `tile` have landed; after the warp barrier, every lane's have.
    WaitCopies<kStages - 1>();
    __syncwarp();
    Convert(jobs, tile_jobs, tile, ring + convert_stage * stage_bytes, first_refused, warp_max,
            fp8_parity);
    convert_stage = convert_stage + 1 == kStages ? 0 : convert_stage + 1;
  }
}

// The kernel of a batch of up to kInlineJobs jobs, which come in the launch's parameters: each
// CTA copies them to shared memory, tiles search them (no tile table), and the last CTA to finish
// publishes the error words (PublishRefusals), so the launch is the batch's only stream
// operation; each other one cost microseconds, 6-8% of a large matrix's conversion
// (bench/results/2026-11-29-gpu-convert-2.md). A tile's location is found once, at its fetch,
// and carried to its conversion (measured faster than finding it twice).
__global__ void __launch_bounds__(kThreadsPerTile, 2)
    InlineConvertKernel(const __grid_constant__ InlineJobs args, int stage_bytes) {
  extern __shared__ uint4 stage_memory[];
  __shared__ uint32_t warp_max[2][kWarps];
  __shared__ DeviceJob jobs[kInlineJobs];
  CopyInlineJobs(args, jobs);
  const uint32_t ring = static_cast<uint32_t>(__cvta_generic_to_shared(stage_memory));
  const int stride = static_cast<int>(gridDim.x);
  const int total = args.total_tiles;

  // As in ConvertKernel, with the location of the tile to convert next in next_at.
  static_assert(kStages == 2);
  int fetch_tile = static_cast<int>(blockIdx.x);
  TileAt next_at{};
  if (fetch_tile < total) {
    next_at = LocateInline(jobs, args.num_jobs, fetch_tile);
    FetchAt(jobs, next_at, ring);
  }
  CommitCopies();
  fetch_tile += stride;
  int fetch_stage = 1, convert_stage = 0, fp8_parity = 0;
  for (int tile = static_cast<int>(blockIdx.x); tile < total; tile += stride) {
    __syncwarp();
    TileAt fetched{};
    if (fetch_tile < total) {
      fetched = LocateInline(jobs, args.num_jobs, fetch_tile);
      FetchAt(jobs, fetched, ring + fetch_stage * stage_bytes);
    }
    CommitCopies();
    fetch_tile += stride;
    fetch_stage = fetch_stage + 1 == kStages ? 0 : fetch_stage + 1;
    const TileAt at = next_at;
    next_at = fetched;
    WaitCopies<kStages - 1>();
    __syncwarp();
    ConvertAt(jobs, at, ring + convert_stage * stage_bytes, args.refused, warp_max, fp8_parity);
    convert_stage = convert_stage + 1 == kStages ? 0 : convert_stage + 1;
  }
  PublishRefusals(args);
}

// tile_jobs[t] = the job of tile t, for the tiles of every job (jobs in tile order, the last
// ending at total_tiles). Built on the device rather than uploaded with the work list: a copy of
// tens of KiB from the host goes through a copy engine, and after large frees the driver keeps
// those busy for milliseconds (an H200 delayed a 32 KiB upload by about 1 ms for some 25 ms after
// 16 GB were freed), while the work list alone stays a few hundred bytes for large tensors.
__global__ void FillTileTable(const DeviceJob* __restrict__ jobs, int num_jobs, int total_tiles,
                              int* __restrict__ tile_jobs) {
  for (int job = static_cast<int>(blockIdx.x); job < num_jobs; job += static_cast<int>(gridDim.x)) {
    const int end = job + 1 < num_jobs ? jobs[job + 1].tile_begin : total_tiles;
    for (int tile = jobs[job].tile_begin + static_cast<int>(threadIdx.x); tile < end;
         tile += static_cast<int>(blockDim.x)) {
      tile_jobs[tile] = job;
    }
  }
}

// After the kernels of a batch with an uploaded work list: copies `count` error words to the
// host (mapped memory) and resets them for the next batch. Stream order puts it after the
// kernels that lower them, so plain accesses suffice; 3-5 us on an H200 where a copy back on
// the stream took 3-13 us.
__global__ void PublishRefusalsKernel(unsigned long long* __restrict__ refused,
                                      unsigned long long* __restrict__ host_refused, int count) {
  const int job = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (job < count) {
    host_refused[job] = refused[job];
    refused[job] = kNoRefusedElement;
  }
}

size_t SharedBytes(int stage_bytes) {
  return static_cast<size_t>(kStages) * static_cast<size_t>(stage_bytes);
}

}  // namespace

int PrepareConvertKernel(int stage_bytes, int* blocks_per_multiprocessor) {
  const size_t shared = SharedBytes(stage_bytes);
  for (const auto kernel : {reinterpret_cast<const void*>(ConvertKernel),
                            reinterpret_cast<const void*>(InlineConvertKernel)}) {
    const cudaError_t error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (error != cudaSuccess) return static_cast<int>(error);
  }
  // The grid is sized for both kernels: the lower of their resident CTAs (the same on an H200).
  int uploaded = 0, inline_jobs = 0;
  cudaError_t error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&uploaded, ConvertKernel,
                                                                    kThreadsPerTile, shared);
  if (error != cudaSuccess) return static_cast<int>(error);
  error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&inline_jobs, InlineConvertKernel,
                                                        kThreadsPerTile, shared);
  *blocks_per_multiprocessor = uploaded < inline_jobs ? uploaded : inline_jobs;
  return static_cast<int>(error);
}

int LaunchConvertKernel(const DeviceJob* jobs, int num_jobs, int32_t* tile_jobs, int total_tiles,
                        int num_blocks, int stage_bytes, unsigned long long* first_refused,
                        CudaStream stream) {
  if (num_blocks <= 0 || total_tiles <= 0 || num_jobs <= 0) return cudaSuccess;
  // One CTA per job up to 4096, which fills the table of a large job or of thousands of small
  // ones in a few microseconds.
  FillTileTable<<<static_cast<unsigned>(num_jobs < 4096 ? num_jobs : 4096), 256, 0, stream>>>(
      jobs, num_jobs, total_tiles, tile_jobs);
  ConvertKernel<<<static_cast<unsigned>(num_blocks), kThreadsPerTile, SharedBytes(stage_bytes),
                  stream>>>(jobs, tile_jobs, total_tiles, stage_bytes, first_refused);
  return static_cast<int>(cudaGetLastError());
}

int LaunchInlineConvertKernel(const InlineJobs& args, int num_blocks, int stage_bytes,
                              CudaStream stream) {
  if (num_blocks <= 0 || args.total_tiles <= 0 || args.num_jobs <= 0) return cudaSuccess;
  InlineConvertKernel<<<static_cast<unsigned>(num_blocks), kThreadsPerTile,
                        SharedBytes(stage_bytes), stream>>>(args, stage_bytes);
  return static_cast<int>(cudaGetLastError());
}

int LaunchPublishRefusals(unsigned long long* refused, unsigned long long* host_refused, int count,
                          CudaStream stream) {
  if (count <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  PublishRefusalsKernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0,
                          stream>>>(refused, host_refused, count);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace weightsync::cuda_convert
