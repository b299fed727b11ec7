// Host side of the CUDA conversion path: validates jobs, builds the device work list (in the
// launch's parameters for a few jobs, else uploaded), launches the kernels and turns their
// "first refused element" words, which the kernels publish in mapped host memory, into the
// reference's Status.
//
// The CUDA runtime is linked statically (cudart_static). It opens the driver (libcuda.so.1) with
// dlopen on the first CUDA call, so programs linking this library still start, and report
// kUnavailable, on machines without a driver. The library is kept apart from ws_convert all the
// same: only GPU programs link it, and the rest of weightsync never needs the CUDA toolkit.
#include "convert/cuda/convert_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "convert/convert_internal.h"
#include "convert/cuda/device_job.h"

namespace weightsync {
namespace {

using cuda_convert::DeviceJob;

Status CudaError(cudaError_t error, std::string_view what) {
  const StatusCode code = (error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver)
                              ? StatusCode::kUnavailable
                              : StatusCode::kInternal;
  return Status(code, StrCat("CUDA conversion: ", what, ": ", cudaGetErrorName(error), ": ",
                             cudaGetErrorString(error)));
}

#define WS_CUDA_RETURN_IF_ERROR(expr, what)                                    \
  do {                                                                         \
    const cudaError_t ws_cuda_error_ = (expr);                                 \
    if (ws_cuda_error_ != cudaSuccess) return CudaError(ws_cuda_error_, what); \
  } while (0)

uint8_t SourceType(DType d) {
  return d == DType::kBF16  ? cuda_convert::kSrcBF16
         : d == DType::kF16 ? cuda_convert::kSrcF16
                            : cuda_convert::kSrcF32;
}
uint8_t DestinationType(DType d) {
  return d == DType::kF8E4M3 ? cuda_convert::kDstF8
         : d == DType::kBF16 ? cuda_convert::kDstBF16
                             : cuda_convert::kDstF32;
}

bool Aligned(const void* p, int64_t stride_bytes, int64_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(alignment) == 0 &&
         stride_bytes % alignment == 0;
}

// A contiguous cast has no block structure, so it is converted as rows of kTile elements: a
// norm vector of 1 x 6144 becomes one 48 x 128 tile instead of 48 tiles of one row each. The
// kernel's refused-element index (row * cols + col) is the same flat index either way.
ConvertJob ShapeForTiles(const ConvertJob& job) {
  const bool contiguous =
      (job.src_row_stride == job.cols && job.dst_row_stride == job.cols) || job.rows == 1;
  if (job.dst_dtype == DType::kF8E4M3 || !contiguous || job.rows * job.cols % cuda_convert::kTile) {
    return job;
  }
  ConvertJob shaped = job;
  shaped.rows = job.rows * job.cols / cuda_convert::kTile;
  shaped.cols = shaped.src_row_stride = shaped.dst_row_stride = cuda_convert::kTile;
  return shaped;
}

DeviceJob MakeDeviceJob(const ConvertJob& job, int64_t tile_begin) {
  DeviceJob d{};
  d.src = job.src;
  d.dst = job.dst;
  d.scales = job.scales;
  d.rows = job.rows;
  d.cols = job.cols;
  d.src_stride = job.src_row_stride;
  d.dst_stride = job.dst_row_stride;
  d.scale_stride = job.scale_row_stride;
  d.tile_begin = static_cast<int32_t>(tile_begin);
  d.tile_cols = static_cast<int32_t>(convert_internal::CeilDiv(job.cols, cuda_convert::kTile));
  d.src_type = SourceType(job.src_dtype);
  d.dst_type = DestinationType(job.dst_dtype);
  const int64_t src_size = static_cast<int64_t>(DTypeSize(job.src_dtype));
  const int64_t dst_size = static_cast<int64_t>(DTypeSize(job.dst_dtype));
  // A chunk is 8 elements: 16 bytes of bf16/fp16 (32 of fp32), 8 bytes of fp8.
  if (Aligned(job.src, job.src_row_stride * src_size, 16)) d.flags |= cuda_convert::kSrcVector;
  if (Aligned(job.dst, job.dst_row_stride * dst_size, dst_size == 1 ? 8 : 16)) {
    d.flags |= cuda_convert::kDstVector;
  }
  return d;
}

bool IsFp32ToFp8(const ConvertJob& job) {
  return job.src_dtype == DType::kF32 && job.dst_dtype == DType::kF8E4M3;
}

int64_t TileCount(const ConvertJob& job) {
  return convert_internal::CeilDiv(job.rows, cuda_convert::kTile) *
         convert_internal::CeilDiv(job.cols, cuda_convert::kTile);
}

}  // namespace

struct CudaConverter::State {
  // Error words, one per work-list entry, kept between batches: on the device (where the kernels
  // lower them; kNoRefusedElement between batches) with the inline kernel's CTA counter after
  // them, and their host copy in mapped pinned memory, written by the inline kernel's last CTA
  // or by the publishing launch after the kernels of an uploaded list.
  unsigned long long* device_words = nullptr;
  unsigned int* finished_ctas = nullptr;
  unsigned long long* host_words = nullptr;
  unsigned long long* mapped_words = nullptr;  // host_words as the device addresses them
  size_t words_capacity = 0;                   // entries

  // Work lists too long for the launch parameters (more than kInlineJobs jobs in a kernel):
  // staged in pinned memory, uploaded, and followed on the device by the tiled kernel's tile
  // table. Grown as needed and kept for the next batch.
  unsigned char* device_memory = nullptr;
  unsigned char* host_memory = nullptr;
  size_t capacity = 0;  // bytes

  // The device the kernel was last prepared for, and how many CTAs it keeps resident there with
  // 16-bit and with fp32 stages.
  int device = -1;
  int resident16 = 0, resident32 = 0;

  // The batch in flight: the jobs (strings owned here) and which entry of the work list each is.
  bool pending = false;
  CudaStream stream = nullptr;
  std::vector<ConvertJob> jobs;
  std::vector<std::string> strings;
  std::vector<int> work_index;                // per job: its work-list index, or -1 (empty job)
  std::vector<ConvertJob> shaped;             // per work-list entry: its job as the kernel tiles it
  std::vector<cuda_convert::DeviceJob> work;  // the work list, tiled kernel's jobs first

  void Release() {
    cudaFree(device_memory);
    cudaFreeHost(host_memory);
    device_memory = host_memory = nullptr;
    capacity = 0;
  }
  void ReleaseWords() {
    cudaFree(device_words);
    cudaFreeHost(host_words);
    device_words = host_words = mapped_words = nullptr;
    finished_ctas = nullptr;
    words_capacity = 0;
  }

  Status Reserve(size_t bytes) {
    if (bytes <= capacity) return Status::Ok();
    Release();
    const size_t want = std::max<size_t>(bytes, size_t{64} << 10);
    WS_CUDA_RETURN_IF_ERROR(cudaMalloc(&device_memory, want), "cudaMalloc");
    WS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&host_memory, want), "cudaMallocHost");
    capacity = want;
    return Status::Ok();
  }

  // Words for `entries` work-list entries, set to "nothing refused" (and the counters to 0) on
  // `stream` before anything else it runs when newly allocated.
  Status ReserveWords(size_t entries, CudaStream on) {
    if (entries <= words_capacity) return Status::Ok();
    ReleaseWords();
    const size_t want = std::max<size_t>(entries, 1024);
    const size_t words_bytes = want * sizeof(unsigned long long);
    void* words = nullptr;
    WS_CUDA_RETURN_IF_ERROR(cudaMalloc(&words, words_bytes + sizeof(unsigned int)), "cudaMalloc");
    device_words = static_cast<unsigned long long*>(words);
    finished_ctas = reinterpret_cast<unsigned int*>(device_words + want);
    void* host = nullptr;
    WS_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&host, words_bytes, cudaHostAllocMapped),
                            "cudaHostAlloc");
    host_words = static_cast<unsigned long long*>(host);
    void* mapped = nullptr;
    WS_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(&mapped, host, 0), "mapping the error words");
    mapped_words = static_cast<unsigned long long*>(mapped);
    WS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(device_words, 0xff, words_bytes, on),
                            "resetting the error words");
    WS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(finished_ctas, 0, sizeof(unsigned int), on),
                            "resetting the CTA counter");
    words_capacity = want;
    return Status::Ok();
  }

  // CTAs the GPU holds at once for a batch with stages of `stage_bytes`, on the current device
  // (the kernel's shared-memory limit is raised there the first time).
  Result<int> ResidentBlocks(int stage_bytes) {
    int current = 0;
    WS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current), "cudaGetDevice");
    if (current != device) {
      int multiprocessors = 0, per16 = 0, per32 = 0;
      WS_CUDA_RETURN_IF_ERROR(
          cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, current),
          "reading the multiprocessor count");
      WS_CUDA_RETURN_IF_ERROR(static_cast<cudaError_t>(cuda_convert::PrepareConvertKernel(
                                  cuda_convert::kStageBytes16, &per16)),
                              "preparing the conversion kernel");
      WS_CUDA_RETURN_IF_ERROR(static_cast<cudaError_t>(cuda_convert::PrepareConvertKernel(
                                  cuda_convert::kStageBytes32, &per32)),
                              "preparing the conversion kernel");
      if (per16 < 1 || per32 < 1) {
        return Internal("CUDA conversion: the kernel does not fit on device ", current,
                        " (resident CTAs per multiprocessor: ", per16, ", ", per32, ")");
      }
      device = current;
      resident16 = multiprocessors * per16;
      resident32 = multiprocessors * per32;
    }
    return stage_bytes > cuda_convert::kStageBytes16 ? resident32 : resident16;
  }

  // The reference's message for element `index` (row-major in the region) of `job`: the value is
  // fetched from the device and checked by the same FindFirstInvalid the CPU paths use.
  Status Refusal(const ConvertJob& job, unsigned long long index) {
    const int64_t row = static_cast<int64_t>(index) / job.cols;
    const int64_t col = static_cast<int64_t>(index) % job.cols;
    const size_t size = DTypeSize(job.src_dtype);
    uint32_t raw = 0;
    const char* at = static_cast<const char*>(job.src) +
                     (row * job.src_row_stride + col) * static_cast<int64_t>(size);
    WS_CUDA_RETURN_IF_ERROR(cudaMemcpy(&raw, at, size, cudaMemcpyDeviceToHost),
                            "reading a refused value");
    ConvertJob one = job;
    one.src = &raw;
    one.rows = one.cols = 1;
    one.src_row_stride = one.dst_row_stride = 1;
    one.row_origin += row;
    one.col_origin += col;
    Status status = convert_internal::FindFirstInvalid(one);
    if (status.ok()) {
      return Internal("tensor ", job.name, ": the GPU refused a valid value at [",
                      job.row_origin + row, ", ", job.col_origin + col, "]");
    }
    return status;
  }
};

CudaConverter::CudaConverter() : state_(std::make_unique<State>()) {}

CudaConverter::~CudaConverter() {
  if (state_->pending) (void)cudaStreamSynchronize(state_->stream);
  state_->Release();
  state_->ReleaseWords();
}

Status CudaConversionAvailable() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it
    return Unavailable("CUDA conversion: no usable CUDA device: ", cudaGetErrorName(error), ": ",
                       cudaGetErrorString(error));
  }
  if (count == 0) return Unavailable("CUDA conversion: no CUDA device");
  return Status::Ok();
}

Status CudaConverter::Enqueue(std::span<const ConvertJob> jobs, CudaStream stream) {
  State& s = *state_;
  if (s.pending) return FailedPrecondition("CUDA conversion: Enqueue before Finish");
  for (const ConvertJob& job : jobs) WS_RETURN_IF_ERROR(convert_internal::ValidateJob(job));

  // Keep what error messages need: the jobs with their strings copied.
  s.jobs.assign(jobs.begin(), jobs.end());
  s.strings.clear();
  s.strings.reserve(2 * jobs.size());
  for (ConvertJob& job : s.jobs) {
    job.name = s.strings.emplace_back(job.name);
    job.context = s.strings.emplace_back(job.context);
  }
  // The work list holds the tiled kernel's jobs first, then those of FP8 from fp32, which the
  // register kernel converts faster (fp32_fp8_kernel.cu); empty jobs are left out.
  s.work_index.assign(jobs.size(), -1);
  size_t tiled_jobs = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].rows > 0 && jobs[i].cols > 0 && !IsFp32ToFp8(jobs[i])) {
      s.work_index[i] = static_cast<int>(tiled_jobs++);
    }
  }
  size_t work = tiled_jobs;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].rows > 0 && jobs[i].cols > 0 && IsFp32ToFp8(jobs[i])) {
      s.work_index[i] = static_cast<int>(work++);
    }
  }
  if (work > static_cast<size_t>(INT32_MAX))
    return InvalidArgument("CUDA conversion: too many jobs");
  s.stream = stream;
  if (work == 0) {
    s.pending = true;
    return Status::Ok();
  }
  s.shaped.assign(work, ConvertJob{});
  int64_t tiled_tiles = 0, register_tiles = 0;
  bool wide_sources = false;  // a tiled job with an fp32 source: stages hold fp32
  for (size_t i = 0; i < jobs.size(); ++i) {
    const int w = s.work_index[i];
    if (w < 0) continue;
    s.shaped[w] = ShapeForTiles(jobs[i]);
    if (static_cast<size_t>(w) < tiled_jobs) {
      tiled_tiles += TileCount(s.shaped[w]);
      wide_sources |= jobs[i].src_dtype == DType::kF32;
    } else {
      register_tiles += TileCount(s.shaped[w]);
    }
  }
  // Tile numbers are 32-bit on the device, with room for the grid stride past the last one
  // (2^30 tiles are 32 TiB of bf16).
  if (tiled_tiles > (int64_t{1} << 30) || register_tiles > (int64_t{1} << 30)) {
    return InvalidArgument("CUDA conversion: more than 2^30 tiles of 128x128 in one batch");
  }
  const int stage_bytes = wide_sources ? cuda_convert::kStageBytes32 : cuda_convert::kStageBytes16;
  int blocks = 0;
  if (tiled_tiles > 0) {
    WS_ASSIGN_OR_RETURN(const int resident, s.ResidentBlocks(stage_bytes));
    blocks = static_cast<int>(std::min<int64_t>(resident, tiled_tiles));
  }
  WS_RETURN_IF_ERROR(s.ReserveWords(work, stream));
  // Nothing refused unless a launch says otherwise (a batch captured into a graph and not run
  // reads this).
  std::fill_n(s.host_words, work, cuda_convert::kNoRefusedElement);

  s.work.resize(work);
  int64_t tile_begin = 0;
  for (size_t w = 0; w < work; ++w) {
    if (w == tiled_jobs) tile_begin = 0;  // each kernel numbers its own tiles
    s.work[w] = MakeDeviceJob(s.shaped[w], tile_begin);
    tile_begin += TileCount(s.shaped[w]);
  }
  // The tiled kernel's jobs travel in its launch when they are few (InlineConvertKernel, which
  // publishes their error words itself); otherwise, and for the fp32 -> FP8 kernel, the work
  // list is uploaded, and a launch after the kernels publishes their error words. The tiled
  // kernel of an uploaded list finds its tiles' jobs in a table (4 bytes per 128x128 tile) after
  // the list on the device, built there (FillTileTable says why).
  const size_t fp32_jobs = work - tiled_jobs;
  const bool tiled_inline = tiled_jobs <= cuda_convert::kInlineJobs;
  if (tiled_inline && tiled_jobs > 0) {
    cuda_convert::InlineJobs args{};
    std::copy_n(s.work.data(), tiled_jobs, args.jobs);
    args.num_jobs = static_cast<int>(tiled_jobs);
    args.total_tiles = static_cast<int>(tiled_tiles);
    args.refused = s.device_words;
    args.host_refused = s.mapped_words;
    args.finished_ctas = s.finished_ctas;
    WS_CUDA_RETURN_IF_ERROR(static_cast<cudaError_t>(cuda_convert::LaunchInlineConvertKernel(
                                args, blocks, stage_bytes, stream)),
                            "launching the conversion kernel");
  }
  if (!tiled_inline || fp32_jobs > 0) {
    const size_t jobs_bytes = work * sizeof(DeviceJob);
    const size_t table_bytes =
        tiled_inline ? 0 : static_cast<size_t>(tiled_tiles) * sizeof(int32_t);
    static_assert(sizeof(DeviceJob) % 8 == 0);
    WS_RETURN_IF_ERROR(s.Reserve(jobs_bytes + table_bytes));
    std::memcpy(s.host_memory, s.work.data(), jobs_bytes);
    WS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(s.device_memory, s.host_memory, jobs_bytes, cudaMemcpyHostToDevice, stream),
        "uploading the work list");
    const auto* device_jobs = reinterpret_cast<const DeviceJob*>(s.device_memory);
    if (!tiled_inline) {
      WS_CUDA_RETURN_IF_ERROR(
          static_cast<cudaError_t>(cuda_convert::LaunchConvertKernel(
              device_jobs, static_cast<int>(tiled_jobs),
              reinterpret_cast<int32_t*>(s.device_memory + jobs_bytes),
              static_cast<int>(tiled_tiles), blocks, stage_bytes, s.device_words, stream)),
          "launching the conversion kernel");
    }
    if (fp32_jobs > 0) {
      WS_CUDA_RETURN_IF_ERROR(
          static_cast<cudaError_t>(cuda_convert::LaunchFp32Fp8Kernel(
              device_jobs + tiled_jobs, static_cast<int>(fp32_jobs),
              static_cast<int>(register_tiles), s.device_words + tiled_jobs, stream)),
          "launching the fp32 -> FP8 kernel");
    }
    // The words of the kernels above (the inline kernel's are published already).
    const size_t first = tiled_inline ? tiled_jobs : 0;
    WS_CUDA_RETURN_IF_ERROR(static_cast<cudaError_t>(cuda_convert::LaunchPublishRefusals(
                                s.device_words + first, s.mapped_words + first,
                                static_cast<int>(work - first), stream)),
                            "launching the error-word copy");
  }
  s.pending = true;
  return Status::Ok();
}

Status CudaConverter::Finish() {
  State& s = *state_;
  if (!s.pending) return FailedPrecondition("CUDA conversion: Finish without Enqueue");
  s.pending = false;
  WS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s.stream), "converting");
  for (size_t i = 0; i < s.jobs.size(); ++i) {
    const int w = s.work_index[i];
    if (w >= 0 && s.host_words[w] != cuda_convert::kNoRefusedElement) {
      return s.Refusal(s.jobs[i], s.host_words[w]);
    }
  }
  return Status::Ok();
}

Status ConvertOnDevice(std::span<const ConvertJob> jobs, CudaStream stream) {
  CudaConverter converter;
  WS_RETURN_IF_ERROR(converter.Enqueue(jobs, stream));
  return converter.Finish();
}

}  // namespace weightsync
