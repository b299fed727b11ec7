// ConvertFast: picks the kernels for this CPU and splits the work over threads.
#include <algorithm>

#include "convert/convert_internal.h"
#include "core/parallel_for.h"

namespace weightsync {
namespace convert_internal {
namespace {

// Below this much traffic per thread, starting a thread costs more than it saves.
constexpr int64_t kMinBytesPerThread = int64_t{256} << 10;

// Returned by a worker that met a refused value; replaced by FindFirstInvalid's message.
Status RefusedMarker() { return Status(StatusCode::kInvalidArgument, "refused value"); }

}  // namespace

Status ConvertWithPath(const ConvertJob& job, int threads, Path path) {
  WS_RETURN_IF_ERROR(ValidateJob(job));
  if (job.rows == 0 || job.cols == 0) return Status::Ok();
  if (path == Path::kAvx2 && !Avx2Supported()) {
    return FailedPrecondition("tensor ", job.name, ": this CPU has no AVX2/F16C");
  }
  if (path == Path::kAvx512 && !Avx512Supported()) {
    return FailedPrecondition("tensor ", job.name, ": this CPU has no AVX-512 F/BW/VL/VBMI");
  }
  if (path == Path::kScalar) {
    // The scalar kernels trust their input, so check it all first.
    WS_RETURN_IF_ERROR(FindFirstInvalid(job));
  }

  Status status;
  if (job.dst_dtype == DType::kF8E4M3) {
    // One work item per strip of up to kFp8StripBlocks blocks of a block row, row-major order.
    const int64_t block_cols = CeilDiv(job.cols, kFp8BlockSize);
    const int64_t strips_per_row = CeilDiv(block_cols, kFp8StripBlocks);
    const int64_t items = CeilDiv(job.rows, kFp8BlockSize) * strips_per_row;
    status = ParallelFor(items, threads, [&](int64_t begin, int64_t end) -> Status {
      ScopedDefaultFpEnv fp_env;  // per thread: MXCSR is thread state
      for (int64_t i = begin; i < end; ++i) {
        const int64_t block_row = i / strips_per_row;
        const int64_t bc_begin = (i % strips_per_row) * kFp8StripBlocks;
        const int64_t bc_end = std::min(block_cols, bc_begin + kFp8StripBlocks);
        if (path == Path::kAvx512) {
          if (!Avx512Fp8Strip(job, block_row, bc_begin, bc_end)) return RefusedMarker();
        } else if (path == Path::kAvx2) {
          if (!Avx2Fp8Strip(job, block_row, bc_begin, bc_end)) return RefusedMarker();
        } else {
          for (int64_t bc = bc_begin; bc < bc_end; ++bc) ReferenceFp8Block(job, block_row, bc);
        }
      }
      return Status::Ok();
    });
  } else {
    status = ParallelFor(job.rows, threads, [&](int64_t begin, int64_t end) -> Status {
      ScopedDefaultFpEnv fp_env;
      if (path == Path::kScalar) {
        ReferenceCastRows(job, begin, end);
      } else if (!Avx2CastRows(job, begin, end)) {
        return RefusedMarker();
      }
      return Status::Ok();
    });
  }
  if (status.ok()) return status;
  // A kernel saw a refused value somewhere; name the first one exactly as the reference does.
  Status first = FindFirstInvalid(job);
  if (first.ok()) return Internal("tensor ", job.name, ": fast conversion refused a valid value");
  return first;
}

}  // namespace convert_internal

namespace convert_internal {
namespace {
Path BestPath() {
  if (Avx512Supported()) return Path::kAvx512;
  return Avx2Supported() ? Path::kAvx2 : Path::kScalar;
}
}  // namespace
}  // namespace convert_internal

std::string_view FastPathName() {
  switch (convert_internal::BestPath()) {
    case convert_internal::Path::kAvx512:
      return "avx512";
    case convert_internal::Path::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

Status ConvertFast(const ConvertJob& job, int threads) {
  using namespace convert_internal;
  // In double: the job is not validated yet, and a bad shape must not overflow here.
  double bytes = static_cast<double>(std::max<int64_t>(job.rows, 0)) *
                 static_cast<double>(std::max<int64_t>(job.cols, 0)) *
                 static_cast<double>(DTypeSize(job.src_dtype) + DTypeSize(job.dst_dtype));
  double useful = std::max(1.0, bytes / static_cast<double>(kMinBytesPerThread));
  int workers = ResolveThreadCount(threads);
  if (useful < workers) workers = static_cast<int>(useful);
  return ConvertWithPath(job, workers, BestPath());
}

}  // namespace weightsync
