// The work list entry the conversion kernel reads, and its launcher. Internal to src/convert/cuda;
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

struct DeviceJob {
  const void* src;
  void* dst;
  float* scales;
  int64_t rows, cols;
  int64_t src_stride, dst_stride, scale_stride;  // elements
  int64_t tile_begin;  // the job's first tile in the launch's numbering (jobs are in tile order)
  int64_t tile_cols;   // ceil(cols / kTile)
  uint8_t src_type, dst_type, flags;
};

// One launch over `num_jobs` jobs covering `total_tiles` tiles. first_refused[j] must hold
// kNoRefusedElement; the kernel lowers it to the smallest row-major index (row * cols + col) of a
// refused element of job j. Returns the launch's cudaError_t as an int.
int LaunchConvertKernel(const DeviceJob* jobs, int num_jobs, int64_t total_tiles,
                        unsigned long long* first_refused, CudaStream stream);

}  // namespace weightsync::cuda_convert
