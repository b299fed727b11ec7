// The conversion kernel: one launch converts every job of a batch. Work is a flat sequence of
// 128x128 tiles (the FP8 quantization block) over all jobs, and a table names each tile's job,
// so thousands of small tensors share one launch without searching for their jobs (a batch of
// up to kInlineJobs jobs ships them in the launch and searches them instead). The grid is
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

constexpr int kStages = 2;
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

__device__ __forceinline__ TileAt Locate(const DeviceJob* jobs, const KernelArgs& args, int tile) {
  TileAt at;
  at.job = args.tile_jobs != nullptr ? __ldg(args.tile_jobs + tile)
                                     : SearchJob(jobs, args.num_jobs, tile);
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
__device__ __forceinline__ void Fp8Tile(const DeviceJob& job, const DeviceJob* job_ptr,
                                        const TileAt& at, uint32_t stage,
                                        unsigned long long* first_refused, uint32_t* warp_max) {
  static_assert(kSrc != kSrcF32, "FP8 from fp32 is fp32_fp8_kernel.cu's");
  // The fields this tile needs, in registers (the stores below could alias the work list as far
  // as the compiler knows, which would make it reload them).
  const int64_t rows = job.rows, cols = job.cols, dst_stride = job.dst_stride;
  uint8_t* const dst = static_cast<uint8_t*>(job.dst);
  const ChunkPlace place = PlaceChunk(cols, at.row, at.col);
  const uint32_t slot = stage + threadIdx.x * 16;
  uint4 values[kPasses];  // zeros outside the job
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    uint4 unused;
    ReadChunk<kSrc>(slot, pass, values[pass], unused);
  }
  uint32_t pair_max = 0;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) pair_max = Max16x2(pair_max, values[pass]);
  uint32_t thread_max = max(pair_max & 0xffffu, pair_max >> 16);
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
  if (threadIdx.x == 0) job.scales[at.row * job.scale_stride + at.col] = scale;
  const float inv = __frcp_rn(scale);

  const bool vector = place.n == kChunk && (job.flags & kDstVector);
  const int present_rows = Present(rows, place.row0, kTile);
  uint8_t* out = dst + place.row0 * dst_stride + place.col;
  const int64_t pass_step = kRowsPerPass * dst_stride;
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
__device__ __forceinline__ void CastTile(const DeviceJob& job, const DeviceJob* job_ptr,
                                         const TileAt& at, uint32_t stage,
                                         unsigned long long* first_refused) {
  const int64_t rows = job.rows, cols = job.cols, dst_stride = job.dst_stride;
  using Out = std::conditional_t<kDst == kDstF32, uint32_t, uint16_t>;
  Out* const dst = static_cast<Out*>(job.dst);
  const ChunkPlace place = PlaceChunk(cols, at.row, at.col);
  const uint32_t slot = stage + threadIdx.x * 16;
  const bool vector = place.n == kChunk && (job.flags & kDstVector);
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

// Fetches `tile` into `stage` and returns where it is.
__device__ __forceinline__ TileAt Fetch(const DeviceJob* jobs, const KernelArgs& args, int tile,
                                        uint32_t stage) {
  const TileAt at = Locate(jobs, args, tile);
  const DeviceJob& job = jobs[at.job];
  if (job.src_type == kSrcF32) {
    FetchTile32(job, at, stage);
  } else {
    FetchTile16(job, at, stage);
  }
  return at;
}

// Converts the tile at `at` of `job` (its fields; job_ptr: where they are) from its stage.
// `fp8_parity` picks the warp-max copy of FP8 tiles and flips on each: two copies let one
// barrier per FP8 tile suffice, since a warp can only write a copy again after every warp passed
// the barrier of the FP8 tile in between, which follows their reads of it.
__device__ __forceinline__ void Convert(const DeviceJob& job, const DeviceJob* job_ptr,
                                        const TileAt& at, uint32_t stage,
                                        unsigned long long* refused,
                                        uint32_t (&warp_max)[2][kWarps], int& fp8_parity) {
  switch (job.src_type * 3 + job.dst_type) {
    case kSrcBF16 * 3 + kDstF8:
      Fp8Tile<kSrcBF16>(job, job_ptr, at, stage, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcF16 * 3 + kDstF8:
      Fp8Tile<kSrcF16>(job, job_ptr, at, stage, refused, warp_max[fp8_parity]);
      fp8_parity ^= 1;
      break;
    case kSrcBF16 * 3 + kDstBF16:
      CastTile<kSrcBF16, kDstBF16>(job, job_ptr, at, stage, refused);
      break;
    case kSrcF16 * 3 + kDstBF16:
      CastTile<kSrcF16, kDstBF16>(job, job_ptr, at, stage, refused);
      break;
    case kSrcF32 * 3 + kDstBF16:
      CastTile<kSrcF32, kDstBF16>(job, job_ptr, at, stage, refused);
      break;
    case kSrcBF16 * 3 + kDstF32:
      CastTile<kSrcBF16, kDstF32>(job, job_ptr, at, stage, refused);
      break;
    case kSrcF16 * 3 + kDstF32:
      CastTile<kSrcF16, kDstF32>(job, job_ptr, at, stage, refused);
      break;
    default:
      CastTile<kSrcF32, kDstF32>(job, job_ptr, at, stage, refused);
      break;
  }
}

// kInline: the work list came in the launch's parameters (a few jobs) and is copied to shared
// memory first; otherwise it is read in device memory. Either way the compiler knows where the
// jobs are: an H200 measured the tiled kernel 2-9% slower reading them through a pointer that
// could be either (bench/results/2026-11-29-gpu-convert-2.md).
template <bool kInline>
__global__ void __launch_bounds__(kThreadsPerTile, 2)
    ConvertKernel(const DeviceJob* __restrict__ uploaded_jobs,
                  const __grid_constant__ KernelArgs args, int stage_bytes) {
  extern __shared__ uint4 stage_memory[];
  __shared__ uint32_t warp_max[2][kWarps];
  __shared__ DeviceJob shared_jobs[kInline ? kInlineJobs : 1];
  const DeviceJob* jobs = uploaded_jobs;
  if constexpr (kInline) {
    CopyInlineJobs(args, shared_jobs);
    jobs = shared_jobs;
  }
  const uint32_t ring = static_cast<uint32_t>(__cvta_generic_to_shared(stage_memory));
  const int stride = static_cast<int>(gridDim.x);
  const int total = args.total_tiles;

  // Tiles are fetched one ahead of the one converted (two stages measured best); a copy group is
  // committed for every fetch, empty past the end, so wait_group counts stay uniform. The fetch
  // finds the tile's job and position, which its conversion reuses.
  static_assert(kStages == 2);
  int fetch_tile = static_cast<int>(blockIdx.x);
  TileAt next_at{};  // where the next tile to convert is
  if (fetch_tile < total) next_at = Fetch(jobs, args, fetch_tile, ring);
  CommitCopies();
  fetch_tile += stride;
  int fetch_stage = 1, convert_stage = 0, fp8_parity = 0;
  for (int tile = static_cast<int>(blockIdx.x); tile < total; tile += stride) {
    // The stage refilled here was converted in the previous iteration: every lane of the warp
    // must be done reading it (fp32 fetches write other lanes' slots).
    __syncwarp();
    TileAt fetched{};
    if (fetch_tile < total) {
      fetched = Fetch(jobs, args, fetch_tile, ring + fetch_stage * stage_bytes);
    }
    CommitCopies();
    fetch_tile += stride;
    fetch_stage = fetch_stage + 1 == kStages ? 0 : fetch_stage + 1;
    const TileAt at = next_at;
    next_at = fetched;
    // This thread's copies of `tile` have landed; after the warp barrier, every lane's have.
    WaitCopies<kStages - 1>();
    __syncwarp();
    const DeviceJob* job_ptr = jobs + at.job;
    Convert(*job_ptr, job_ptr, at, ring + convert_stage * stage_bytes, args.refused + at.job,
            warp_max, fp8_parity);
    convert_stage = convert_stage + 1 == kStages ? 0 : convert_stage + 1;
  }
  PublishRefusals(args);
}

// tile_jobs[t] = the job of tile t, for the tiles of every job (jobs in tile order, the last
// ending at total_tiles). Built on the device rather than uploaded with the work list: a copy of
// tens of KiB from the host goes through a copy engine, and after large frees the driver keeps
// those busy for milliseconds (an H200 delayed a 32 KiB upload by about 1 ms for some 25 ms after
// 16 GB were freed), while the work list alone stays a few KiB.
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

using KernelPointer = void (*)(const DeviceJob*, KernelArgs, int);
KernelPointer KernelFor(bool inline_jobs) {
  return inline_jobs ? ConvertKernel<true> : ConvertKernel<false>;
}
size_t SharedBytes(int stage_bytes) {
  return static_cast<size_t>(kStages) * static_cast<size_t>(stage_bytes);
}

}  // namespace

int PrepareConvertKernel(int stage_bytes, int* blocks_per_multiprocessor) {
  const size_t shared = SharedBytes(stage_bytes);
  for (const bool inline_jobs : {false, true}) {
    const cudaError_t error =
        cudaFuncSetAttribute(KernelFor(inline_jobs), cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared));
    if (error != cudaSuccess) return static_cast<int>(error);
  }
  // The inline kernel's 640 bytes of jobs do not change how many CTAs fit.
  return static_cast<int>(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      blocks_per_multiprocessor, KernelFor(true), kThreadsPerTile, shared));
}

int LaunchFillTileTable(const DeviceJob* jobs, int num_jobs, int total_tiles, int32_t* tile_jobs,
                        CudaStream stream) {
  if (num_jobs <= 0 || total_tiles <= 0) return cudaSuccess;
  // One CTA per job up to 4096, which fills the table of a large job or of thousands of small
  // ones in a few microseconds.
  FillTileTable<<<static_cast<unsigned>(num_jobs < 4096 ? num_jobs : 4096), 256, 0, stream>>>(
      jobs, num_jobs, total_tiles, tile_jobs);
  return static_cast<int>(cudaGetLastError());
}

int LaunchConvertKernel(const DeviceJob* uploaded_jobs, const KernelArgs& args, int num_blocks,
                        int stage_bytes, CudaStream stream) {
  if (num_blocks <= 0 || args.total_tiles <= 0 || args.num_jobs <= 0) return cudaSuccess;
  KernelFor(uploaded_jobs == nullptr)<<<static_cast<unsigned>(num_blocks), kThreadsPerTile,
                                        SharedBytes(stage_bytes), stream>>>(uploaded_jobs, args,
                                                                            stage_bytes);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace weightsync::cuda_convert
