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

// A batch whose tiled kernel has at most kInlineJobs jobs ships them in the launch's parameters
// (InlineConvertKernel), and nothing is copied after the kernel either: the error words stay on
// the device between launches (kNoRefusedElement, and the CTA counter 0), and the last CTA
// copies them to mapped host memory and resets them. Each stream operation costs microseconds,
// several percent of a large matrix's conversion time (bench/results/2026-11-29-gpu-convert-2.md).
inline constexpr int kInlineJobs = 8;

struct InlineJobs {
  DeviceJob jobs[kInlineJobs];
  int num_jobs;
  int total_tiles;
  // Per job: the smallest row-major index (row * cols + col) of a refused element, lowered by
  // atomicMin during the launch (device memory), and where it is published for the host.
  unsigned long long* refused;
  unsigned long long* host_refused;
  unsigned int* finished_ctas;  // 0 before and after the launch
};

// The tiled kernels' resident CTAs per multiprocessor with pipeline stages of `stage_bytes` on
// the current device (kStageBytes16 or kStageBytes32), after raising their shared-memory limit
// there. Returns the cudaError_t as an int.
int PrepareConvertKernel(int stage_bytes, int* blocks_per_multiprocessor);

// The tiled kernel (convert_kernels.cu) of an uploaded work list, for every job but FP8 from
// fp32: one launch of `num_blocks` CTAs over the `total_tiles` tiles (< 2^31) of the `num_jobs`
// jobs of `jobs`, after a launch that writes the work-list index of tile t's job to tile_jobs[t]
// (device memory of total_tiles entries). stage_bytes: kStageBytes32 if any job has an fp32
// source, else kStageBytes16. first_refused[j] must hold kNoRefusedElement; the kernel lowers it
// to the smallest row-major index (row * cols + col) of a refused element of job j. Returns the
// launch's cudaError_t as an int.
int LaunchConvertKernel(const DeviceJob* jobs, int num_jobs, int32_t* tile_jobs, int total_tiles,
                        int num_blocks, int stage_bytes, unsigned long long* first_refused,
                        CudaStream stream);

// The tiled kernel of up to kInlineJobs jobs (args), which publishes its error words itself
// (InlineJobs). num_blocks and stage_bytes as above.
int LaunchInlineConvertKernel(const InlineJobs& args, int num_blocks, int stage_bytes,
                              CudaStream stream);

// The register kernel (fp32_fp8_kernel.cu), for FP8 from fp32 only: one launch over the
// `num_jobs` jobs of `jobs`, which cover `total_tiles` tiles (<= 2^30) numbered from 0 by their
// tile_begin; first_refused as above, indexed like `jobs`.
int LaunchFp32Fp8Kernel(const DeviceJob* jobs, int num_jobs, int total_tiles,
                        unsigned long long* first_refused, CudaStream stream);

// After the kernels of an uploaded work list: host_refused[j] = refused[j] (host_refused mapped
// host memory), and refused[j] reset to kNoRefusedElement, for j < count.
int LaunchPublishRefusals(unsigned long long* refused, unsigned long long* host_refused, int count,
                          CudaStream stream);

}  // namespace weightsync::cuda_convert
