// GPU conversion throughput beside the GPU's own copy speed, measured in the same run.
//
// Bandwidth counts bytes read plus bytes written, for the kernel (source + destination + scales)
// and for the baseline (cudaMemcpy device to device of a 2 GiB buffer: 2 x its size). Each case
// is timed with CUDA events around one CudaConverter::Enqueue (everything it puts on the
// stream: a work-list upload when the list is long, the kernels), behind a short delay kernel so
// the host's enqueueing is not in the timing; the median of the iterations is reported. Each
// batch is then captured into a CUDA graph and its pieces (uploads, kernels) are timed alone at
// the same place in the run, every iteration printed to stderr; the kernels' median is a column of
// the table printed last. Cases with at most 1 GiB of source are then checked byte for byte against
// ConvertFast (bit-exact with the scalar reference) on the host; a mismatch exits 1.
// Without a GPU it says so and exits 0.
//
//   convert_gpu_bench [SUBSTRING...]   only the cases whose name holds one of the SUBSTRINGs
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/gpu_test_kernels.h"

namespace weightsync {
namespace {

constexpr int kIterations = 10;

#define CHECK_CUDA(expr)                                                                          \
  do {                                                                                            \
    cudaError_t e_ = (expr);                                                                      \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

void CheckOk(const Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of one device-to-device copy of `bytes`.
double CopySeconds(size_t bytes, cudaStream_t stream) {
  void *a = nullptr, *b = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CheckOk(cuda_convert::FillRandom(a, static_cast<int64_t>(bytes / 4), DType::kF32, 1, stream),
          "fill");
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  for (int i = 0; i < kIterations + 2; ++i) {
    CheckOk(cuda_convert::DelayStream(stream, 50), "delay");
    cudaEventRecord(start, stream);
    CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
    cudaEventRecord(stop, stream);
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i >= 2) times.push_back(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return Median(times);
}

struct Tensor {
  int64_t rows, cols;
};

struct Case {
  std::string name;
  DType src, dst;
  std::vector<Tensor> tensors;
};

struct Row {
  std::string name;
  size_t jobs;
  double bytes, seconds;
  double kernel_seconds;  // the batch's kernels alone (KernelSeconds)
  bool verified;
};

// Median seconds of `graph` launched behind a delay kernel, as RunCase times a batch; `label`
// prints every iteration to stderr.
double GraphSeconds(cudaGraph_t graph, cudaStream_t stream, int delay_us,
                    const std::string& label) {
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::vector<double> times;
  std::string each;
  for (int i = 0; i < kIterations + 2; ++i) {
    CheckOk(cuda_convert::DelayStream(stream, delay_us), "delay");
    CHECK_CUDA(cudaEventRecord(start, stream));
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    if (i >= 2) times.push_back(ms / 1e3);
    each += " " + std::to_string(static_cast<int>(ms * 1e3));
  }
  std::fprintf(stderr, "  %s (us):%s\n", label.c_str(), each.c_str());
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  return Median(times);
}

// What one Enqueue puts on the stream, timed piece by piece at the same place in the run: the
// batch is captured into a CUDA graph, and each of its nodes (work-list upload, kernels,
// error-word download) is timed alone, then the kernels together. Returns the kernels' median.
double KernelSeconds(CudaConverter& converter, const std::vector<ConvertJob>& jobs,
                     cudaStream_t stream, int delay_us) {
  cudaGraph_t whole;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const Status captured = converter.Enqueue(jobs, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &whole));
  CheckOk(captured, "enqueue (captured)");
  CheckOk(converter.Finish(), "finish (captured)");  // nothing ran: the words say "none refused"
  size_t count = 0;
  CHECK_CUDA(cudaGraphGetNodes(whole, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  CHECK_CUDA(cudaGraphGetNodes(whole, nodes.data(), &count));
  cudaGraph_t kernels;
  CHECK_CUDA(cudaGraphCreate(&kernels, 0));
  cudaGraphNode_t last = nullptr;
  for (size_t i = 0; i < count; ++i) {
    cudaGraphNodeType type;
    CHECK_CUDA(cudaGraphNodeGetType(nodes[i], &type));
    cudaGraph_t alone;
    CHECK_CUDA(cudaGraphCreate(&alone, 0));
    cudaGraphNode_t added;
    std::string label;
    if (type == cudaGraphNodeTypeKernel) {
      cudaKernelNodeParams params;
      CHECK_CUDA(cudaGraphKernelNodeGetParams(nodes[i], &params));
      CHECK_CUDA(cudaGraphAddKernelNode(&added, alone, nullptr, 0, &params));
      CHECK_CUDA(
          cudaGraphAddKernelNode(&added, kernels, last ? &last : nullptr, last ? 1 : 0, &params));
      last = added;
      label = "node " + std::to_string(i) + ": kernel of " + std::to_string(params.gridDim.x) +
              " CTAs, " + std::to_string(params.sharedMemBytes) + " B shared";
    } else if (type == cudaGraphNodeTypeMemcpy) {
      cudaMemcpy3DParms params;
      CHECK_CUDA(cudaGraphMemcpyNodeGetParams(nodes[i], &params));
      CHECK_CUDA(cudaGraphAddMemcpyNode(&added, alone, nullptr, 0, &params));
      label = "node " + std::to_string(i) + ": copy of " + std::to_string(params.extent.width) +
              " B, kind " + std::to_string(static_cast<int>(params.kind));
    } else {
      label = "node " + std::to_string(i) + ": type " + std::to_string(static_cast<int>(type));
    }
    if (type == cudaGraphNodeTypeKernel || type == cudaGraphNodeTypeMemcpy) {
      GraphSeconds(alone, stream, delay_us, label);
    } else {
      std::fprintf(stderr, "  %s (not timed)\n", label.c_str());
    }
    CHECK_CUDA(cudaGraphDestroy(alone));
  }
  GraphSeconds(whole, stream, delay_us, "the whole captured batch");
  const double seconds = GraphSeconds(kernels, stream, delay_us, "its kernels alone");
  CHECK_CUDA(cudaGraphDestroy(kernels));
  CHECK_CUDA(cudaGraphDestroy(whole));
  return seconds;
}

// Every destination and scale byte of `jobs` (device pointers into src/dst/scales) against
// ConvertFast on host copies. Exits 1 on the first difference.
void Verify(const Case& c, const std::vector<ConvertJob>& jobs, const char* src, size_t src_bytes,
            const char* dst, size_t dst_bytes, const float* scales, size_t scale_count) {
  std::vector<char> host_src(src_bytes), got(dst_bytes), want(dst_bytes);
  std::vector<float> got_scales(scale_count), want_scales(scale_count);
  CHECK_CUDA(cudaMemcpy(host_src.data(), src, src_bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(got.data(), dst, dst_bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(got_scales.data(), scales, scale_count * 4, cudaMemcpyDeviceToHost));
  for (ConvertJob job : jobs) {
    job.src = host_src.data() + (static_cast<const char*>(job.src) - src);
    job.dst = want.data() + (static_cast<char*>(job.dst) - dst);
    if (job.scales != nullptr) job.scales = want_scales.data() + (job.scales - scales);
    // Threads only for large jobs: starting them would dominate thousands of small ones.
    CheckOk(ConvertFast(job, job.rows * job.cols >= (int64_t{1} << 20) ? 0 : 1), "host reference");
  }
  for (size_t i = 0; i < dst_bytes; ++i) {
    if (got[i] != want[i]) {
      std::fprintf(stderr, "%s: destination byte %zu differs from the host reference\n",
                   c.name.c_str(), i);
      std::exit(1);
    }
  }
  if (std::memcmp(got_scales.data(), want_scales.data(), scale_count * 4) != 0) {
    std::fprintf(stderr, "%s: scales differ from the host reference\n", c.name.c_str());
    std::exit(1);
  }
}

Row RunCase(const Case& c, cudaStream_t stream) {
  const size_t src_size = DTypeSize(c.src), dst_size = DTypeSize(c.dst);
  const bool fp8 = c.dst == DType::kF8E4M3;
  int64_t src_elems = 0, scale_elems = 0;
  for (const Tensor& t : c.tensors) {
    src_elems += t.rows * t.cols;
    scale_elems += fp8 ? (t.rows + 127) / 128 * ((t.cols + 127) / 128) : 0;
  }
  char *src = nullptr, *dst = nullptr;
  float* scales = nullptr;
  CHECK_CUDA(cudaMalloc(&src, static_cast<size_t>(src_elems) * src_size));
  CHECK_CUDA(cudaMalloc(&dst, static_cast<size_t>(src_elems) * dst_size));
  CHECK_CUDA(cudaMalloc(&scales, static_cast<size_t>(std::max<int64_t>(scale_elems, 1)) * 4));
  CheckOk(cuda_convert::FillRandom(src, src_elems, c.src, 7, stream), "fill");

  // Tensors packed back to back, as in a staging slot.
  std::vector<ConvertJob> jobs;
  int64_t at = 0, scale_at = 0;
  for (const Tensor& t : c.tensors) {
    ConvertJob job;
    job.src = src + at * static_cast<int64_t>(src_size);
    job.src_dtype = c.src;
    job.rows = t.rows;
    job.cols = t.cols;
    job.src_row_stride = job.dst_row_stride = t.cols;
    job.dst = dst + at * static_cast<int64_t>(dst_size);
    job.dst_dtype = c.dst;
    if (fp8) {
      job.scales = scales + scale_at;
      job.scale_row_stride = (t.cols + 127) / 128;
      scale_at += (t.rows + 127) / 128 * job.scale_row_stride;
    }
    job.name = c.name;
    jobs.push_back(job);
    at += t.rows * t.cols;
  }

  CudaConverter converter;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  std::string each, host_each;
  // Long enough for the host to build and enqueue the work list (about 1 us per job).
  const int delay_us = 200 + 2 * static_cast<int>(jobs.size());
  for (int i = 0; i < kIterations + 2; ++i) {
    CheckOk(cuda_convert::DelayStream(stream, delay_us), "delay");
    cudaEventRecord(start, stream);
    const auto host_start = std::chrono::steady_clock::now();
    CheckOk(converter.Enqueue(jobs, stream), "enqueue");
    const auto host_end = std::chrono::steady_clock::now();
    cudaEventRecord(stop, stream);
    CheckOk(converter.Finish(), c.name.c_str());
    host_each +=
        " " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::microseconds>(host_end - host_start).count());
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i >= 2) times.push_back(ms / 1e3);
    each += " " + std::to_string(static_cast<int>(ms * 1e3));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::fprintf(stderr, "%s\n  Enqueue (us):%s\n  Enqueue on the host (us, delay %d):%s\n",
               c.name.c_str(), each.c_str(), delay_us, host_each.c_str());
  const double kernel_seconds = KernelSeconds(converter, jobs, stream, delay_us);
  const size_t src_bytes = static_cast<size_t>(src_elems) * src_size;
  const bool verify = src_bytes <= (size_t{1} << 30);
  if (verify) {
    Verify(c, jobs, src, src_bytes, dst, static_cast<size_t>(src_elems) * dst_size, scales,
           static_cast<size_t>(scale_elems));
  }
  cudaFree(src);
  cudaFree(dst);
  cudaFree(scales);
  const double bytes = static_cast<double>(src_elems) * static_cast<double>(src_size + dst_size) +
                       static_cast<double>(scale_elems) * 4;
  return {c.name, jobs.size(), bytes, Median(times), kernel_seconds, verify};
}

int Main(const std::vector<std::string>& filters) {
  const Status available = CudaConversionAvailable();
  if (!available.ok()) {
    std::printf("skipped: no CUDA device (%s)\n", available.message().c_str());
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("GPU: %s, %d SMs, %.0f GiB, L2 %d MiB; CUDA driver API %d, runtime %d\n", prop.name,
              prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1 << 30),
              prop.l2CacheSize >> 20, driver, runtime);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  const size_t copy_bytes = size_t{2} << 30;
  const double copy_seconds = CopySeconds(copy_bytes, stream);
  const double copy_bw = 2.0 * static_cast<double>(copy_bytes) / copy_seconds;

  // DeepSeek-V3's dense MLP (7168 x 18432); GLM-5's routed experts' down_proj, all 256
  // (6144 x 2048 each, one job per expert); small tensors of mixed shapes; norm vectors.
  std::vector<Tensor> mlp = {{7168, 18432}};
  std::vector<Tensor> experts(256, Tensor{6144, 2048});
  std::vector<Tensor> small;
  const Tensor small_shapes[] = {{128, 512}, {64, 1024}, {256, 256}, {200, 300}, {512, 128}};
  for (int i = 0; i < 8192; ++i) small.push_back(small_shapes[i % 5]);
  std::vector<Tensor> vectors(16384, Tensor{1, 6144});
  // The MLP's bytes as 128-column rows: each 128x128 block is 32 KiB of contiguous source (the
  // MLP's blocks are 128 pieces of 256 bytes), which tells DRAM locality from per-tile work.
  std::vector<Tensor> narrow = {{7168 * 18432 / 128, 128}};
  const Case cases[] = {
      {"bf16->fp8 7168x18432", DType::kBF16, DType::kF8E4M3, mlp},
      {"fp32->fp8 7168x18432", DType::kF32, DType::kF8E4M3, mlp},
      {"bf16->fp8 1032192x128 (the MLP's bytes, contiguous blocks)", DType::kBF16, DType::kF8E4M3,
       narrow},
      {"bf16->fp8 256 x 6144x2048", DType::kBF16, DType::kF8E4M3, experts},
      {"fp32->fp8 256 x 6144x2048", DType::kF32, DType::kF8E4M3, experts},
      {"bf16->bf16 7168x18432", DType::kBF16, DType::kBF16, mlp},
      {"fp32->bf16 7168x18432", DType::kF32, DType::kBF16, mlp},
      {"bf16->fp8 8192 small (64..512 x 128..1024)", DType::kBF16, DType::kF8E4M3, small},
      {"bf16->bf16 16384 x 1x6144 vectors", DType::kBF16, DType::kBF16, vectors},
  };
  std::vector<Row> rows;
  for (const Case& c : cases) {
    if (!filters.empty() && std::none_of(filters.begin(), filters.end(), [&](const std::string& f) {
          return c.name.find(f) != std::string::npos;
        })) {
      continue;
    }
    rows.push_back(RunCase(c, stream));
    std::fprintf(stderr, "%s done\n", c.name.c_str());
  }

  std::printf("\ncudaMemcpy D2D %zu MiB: %.1f us, %.1f GB/s (read + write)\n\n", copy_bytes >> 20,
              copy_seconds * 1e6, copy_bw / 1e9);
  std::printf(
      "| case | jobs | MB moved | time (us) | GB/s | / copy | kernels alone (us) | / copy |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double bw = r.bytes / r.seconds;
    const double kernel_bw = r.bytes / r.kernel_seconds;
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %.3f | %.1f | %.3f |\n", r.name.c_str(), r.jobs,
                r.bytes / 1e6, r.seconds * 1e6, bw / 1e9, bw / copy_bw, r.kernel_seconds * 1e6,
                kernel_bw / copy_bw);
  }
  std::printf("\nchecked byte for byte against ConvertFast on the host:");
  for (const Row& r : rows) {
    if (r.verified) std::printf(" [%s]", r.name.c_str());
  }
  std::printf("\n");
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace
}  // namespace weightsync

int main(int argc, char** argv) { return weightsync::Main({argv + 1, argv + argc}); }
