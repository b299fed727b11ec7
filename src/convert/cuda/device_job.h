// The work list the conversion kernel reads, and its launcher. Internal to src/convert/cuda;
// plain C++ so the host code can be compiled by the host compiler.
#pragma once

#include <cstdint>

#include "convert/cuda/convert_cuda.h"

namespace weightsync::cuda_convert {

enum SourceType : uint8_t { kSrcBF16 = 0, kSrcF16 = 1, kSrcF32 = 2 };
enum DestinationType : uint8_t { kDstF8 = 0, kDstBF16 = 1, kDstF32 = 2 };
// Whether every 8-element chunk of a row starts 16-byte aligned in the source / suitably aligned
// (8 bytes for fp8, 16 otherwise) in the destination, so the kernel may use vector accesses.
enum JobFlags : uint8_t { kSrcVector = 1, kDstVector = 2 };

// Tiles are kTile x kTile elements, the FP8 quantization block; casts use the same tiling.
inline constexpr int kTile = 128;
inline constexpr int kThreadsPerTile = 512;
inline constexpr unsigned long long kNoRefusedElement = ~0ull;

// Shared memory of one pipeline stage (one tile of source data): 8 elements per thread and row
// pass, 4 passes, as 16-bit values or, in batches with fp32 sources, as fp32.
inline constexpr int kStageBytes16 = kThreadsPerTile * 4 * 16;  // 32 KiB
inline constexpr int kStageBytes32 = 2 * kStageBytes16;         // 64 KiB

struct DeviceJob {
  const void* src;
  void* dst;
  float* scales;
  int64_t rows, cols;
  int64_t src_stride, dst_stride, scale_stride;  // elements
  int32_t tile_begin;  // the job's first tile in the launch's numbering (jobs in tile order)
  int32_t tile_cols;   // ceil(cols / kTile)
  uint8_t src_type, dst_type, flags;
};

// What a conversion kernel launch is given besides the work list. A batch whose tiled kernel
// has a few jobs ships them inside that launch (inline_jobs), and nothing is copied after the
// kernels either: the error words stay on the device between launches (kNoRefusedElement, and
// the CTA counter 0), and the last CTA copies them to mapped host memory and resets them. Each
// stream operation costs microseconds, several percent of a large matrix's conversion time
// (bench/results/2026-11-29-gpu-convert-2.md).
inline constexpr int kInlineJobs = 8;

struct KernelArgs {
  DeviceJob inline_jobs[kInlineJobs];  // the tiled kernel's jobs when no list is uploaded
  int num_jobs;
  int total_tiles;
  // tile_jobs[t] = the job of tile t (FillTileTable), or nullptr: tiles search the work list.
  const int32_t* tile_jobs;
  // Per job: the smallest row-major index (row * cols + col) of a refused element, lowered by
  // atomicMin during the launch (device memory), and where it is published for the host.
  unsigned long long* refused;
  unsigned long long* host_refused;
  unsigned int* finished_ctas;  // 0 before and after the launch (tiled kernel)
};

// The kernel's resident CTAs per multiprocessor with pipeline stages of `stage_bytes` on the
// current device (kStageBytes16 or kStageBytes32), after raising its shared-memory limit there.
// Returns the cudaError_t as an int.
int PrepareConvertKernel(int stage_bytes, int* blocks_per_multiprocessor);

// Writes tile_jobs[t] = the index of the job owning tile t for the `num_jobs` jobs of `jobs`
// (device memory, in tile order, the last ending at total_tiles). Returns the cudaError_t.
int LaunchFillTileTable(const DeviceJob* jobs, int num_jobs, int total_tiles, int32_t* tile_jobs,
                        CudaStream stream);

// The tiled kernel (convert_kernels.cu), for every job but FP8 from fp32: one launch of
// `num_blocks` CTAs over the args.total_tiles tiles (< 2^31) of the args.num_jobs jobs, which
// are `uploaded_jobs` (device memory) or, when that is nullptr, args.inline_jobs. stage_bytes:
// kStageBytes32 if any job has an fp32 source, else kStageBytes16. Returns the launch's
// cudaError_t as an int.
int LaunchConvertKernel(const DeviceJob* uploaded_jobs, const KernelArgs& args, int num_blocks,
                        int stage_bytes, CudaStream stream);

// The register kernel (fp32_fp8_kernel.cu), for FP8 from fp32 only: one CTA per tile over the
// `jobs` (device memory) of args, which cover args.total_tiles tiles (<= 2^30) numbered from 0
// by their tile_begin, then a one-CTA launch that publishes their error words. Returns the
// cudaError_t as an int.
int LaunchFp32Fp8Kernel(const DeviceJob* jobs, const KernelArgs& args, CudaStream stream);

}  // namespace weightsync::cuda_convert
