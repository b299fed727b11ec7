// Throughput of the conversion kernels against memcpy of the same traffic, on one large matrix.
//
// Bytes counted per iteration are bytes read + bytes written (scales included). A memcpy of N
// bytes reads N and writes N, so it is charged 2N and each memcpy benchmark copies half the
// traffic of the conversion it stands beside. At the end the program prints
// fast / memcpy ratios for one thread and for all threads.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
#include "core/float_bits.h"
#include "core/parallel_for.h"

namespace weightsync {
namespace {

constexpr int64_t kRows = 4096;
constexpr int64_t kCols = 6144;

enum class Mode { kReference, kFast1, kFastAll };

struct Buffers {
  std::vector<uint16_t> bf16;
  std::vector<float> f32;
  std::vector<uint8_t> dst;  // large enough for any destination
  std::vector<float> scales;
  std::vector<uint8_t> copy_src, copy_dst;

  Buffers() {
    size_t n = static_cast<size_t>(kRows * kCols);
    bf16.resize(n);
    f32.resize(n);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);  // like trained weights
    for (size_t i = 0; i < n; ++i) {
      f32[i] = normal(rng);
      bf16[i] = FloatToBF16(f32[i]);
    }
    dst.assign(n * 4, 0);
    scales.assign(static_cast<size_t>((kRows / 128) * (kCols / 128)), 0.0f);
    copy_src.assign(n * 6, 1);  // half the largest traffic: fp32 -> bf16 moves 6 bytes/element
    copy_dst.assign(n * 6, 0);
  }
};

Buffers& Get() {
  static Buffers* buffers = new Buffers();
  return *buffers;
}

int64_t TrafficBytes(DType src, DType dst) {
  int64_t bytes = kRows * kCols * static_cast<int64_t>(DTypeSize(src) + DTypeSize(dst));
  if (dst == DType::kF8E4M3) bytes += (kRows / 128) * (kCols / 128) * 4;
  return bytes;
}

void BM_Convert(benchmark::State& state, DType src, DType dst, Mode mode) {
  Buffers& b = Get();
  ConvertJob job;
  job.src = src == DType::kBF16 ? static_cast<const void*>(b.bf16.data())
                                : static_cast<const void*>(b.f32.data());
  job.src_dtype = src;
  job.rows = kRows;
  job.cols = kCols;
  job.src_row_stride = kCols;
  job.dst = b.dst.data();
  job.dst_dtype = dst;
  job.dst_row_stride = kCols;
  job.scales = b.scales.data();
  job.scale_row_stride = kCols / 128;
  job.name = "bench";
  for (auto _ : state) {
    Status status = mode == Mode::kReference ? ConvertReference(job)
                    : mode == Mode::kFast1   ? ConvertFast(job, 1)
                                             : ConvertFast(job, 0);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * TrafficBytes(src, dst));
  state.SetLabel(mode == Mode::kReference ? "scalar reference" : std::string(FastPathName()));
}

// Copies half of `traffic` bytes, so read + written equals the conversion's traffic.
void BM_Memcpy(benchmark::State& state, int64_t traffic, int threads) {
  Buffers& b = Get();
  int64_t bytes = traffic / 2;
  constexpr int64_t kChunk = 1 << 20;
  for (auto _ : state) {
    Status status = ParallelFor((bytes + kChunk - 1) / kChunk, threads,
                                [&](int64_t begin, int64_t end) -> Status {
                                  int64_t lo = begin * kChunk;
                                  int64_t hi = std::min(bytes, end * kChunk);
                                  std::memcpy(b.copy_dst.data() + lo, b.copy_src.data() + lo,
                                              static_cast<size_t>(hi - lo));
                                  return Status::Ok();
                                });
    benchmark::DoNotOptimize(status);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * bytes);
}

struct Case {
  const char* name;
  DType src, dst;
};
constexpr Case kCases[] = {{"bf16_to_fp8", DType::kBF16, DType::kF8E4M3},
                           {"fp32_to_fp8", DType::kF32, DType::kF8E4M3},
                           {"fp32_to_bf16", DType::kF32, DType::kBF16}};

void RegisterAll() {
  for (const Case& c : kCases) {
    std::string base = c.name;
    int64_t traffic = TrafficBytes(c.src, c.dst);
    benchmark::RegisterBenchmark((base + "/reference").c_str(), BM_Convert, c.src, c.dst,
                                 Mode::kReference)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((base + "/fast_1thread").c_str(), BM_Convert, c.src, c.dst,
                                 Mode::kFast1)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((base + "/memcpy_1thread").c_str(), BM_Memcpy, traffic, 1)
        ->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((base + "/fast_all_threads").c_str(), BM_Convert, c.src, c.dst,
                                 Mode::kFastAll)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((base + "/memcpy_all_threads").c_str(), BM_Memcpy, traffic, 0)
        ->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

// The console output, plus the fast / memcpy ratios once everything has run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("bytes_per_second");
      if (it != run.counters.end() && run.run_type == Run::RT_Iteration) {
        // Names end in "/real_time"; key by the name as registered.
        std::string name = run.benchmark_name();
        const std::string suffix = "/real_time";
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
          name.resize(name.size() - suffix.size());
        }
        rates_[name] = it->second.value;
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nthreads (all) = %d, fast path = %.*s\n", ResolveThreadCount(0),
                static_cast<int>(FastPathName().size()), FastPathName().data());
    for (const Case& c : kCases) {
      std::string base = c.name;
      auto rate = [&](const char* what) { return rates_[base + "/" + what]; };
      std::printf("%-13s fast_1thread / memcpy_1thread = %.2f   fast_all / memcpy_all = %.2f   "
                  "fast_1thread / reference = %.1f\n",
                  c.name, rate("fast_1thread") / rate("memcpy_1thread"),
                  rate("fast_all_threads") / rate("memcpy_all_threads"),
                  rate("fast_1thread") / rate("reference"));
    }
  }

 private:
  std::map<std::string, double> rates_;
};

}  // namespace
}  // namespace weightsync

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  weightsync::RegisterAll();
  weightsync::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
