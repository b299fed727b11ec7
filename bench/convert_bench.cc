// Throughput of the conversion kernels against memcpy of the same traffic, on two matrix sizes.
//
// Bytes counted per iteration are bytes read + bytes written (scales included). A memcpy of N
// bytes reads N and writes N, so it is charged 2N and each memcpy benchmark copies half the
// traffic of the conversion it stands beside. At the end the program prints
// fast / memcpy ratios for one thread and for all threads (medians when run with
// --benchmark_repetitions=N --benchmark_report_aggregates_only=true, as the results files are).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <cmath>
#include <map>
#include <set>
#include <random>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
#include "core/float_bits.h"
#include "core/parallel_for.h"

namespace weightsync {
namespace {

// Two sizes, 6144 columns each: "48MiB" (4096 rows: a 48 MiB bf16 / 96 MiB fp32 source, about
// what the previous runs used; the whole working set may sit in a large L3) and "384MiB"
// (32768 rows: 384 MiB bf16 / 768 MiB fp32, beyond any L3 here).
constexpr int64_t kCols = 6144;
constexpr int64_t kSmallRows = 4096;
constexpr int64_t kLargeRows = 32768;

enum class Mode { kReference, kFast1, kFastAll };

struct Buffers {
  int64_t rows;
  std::vector<uint16_t> bf16;
  std::vector<float> f32;
  std::vector<uint8_t> dst;  // large enough for any destination but fp32
  std::vector<float> scales;
  std::vector<uint8_t> copy_src, copy_dst;

  explicit Buffers(int64_t r) : rows(r) {
    size_t n = static_cast<size_t>(rows * kCols);
    bf16.resize(n);
    f32.resize(n);
    // A 4 Mi-element random pattern, repeated (filling 200 M elements from the RNG is slow).
    const size_t pattern = std::min<size_t>(n, size_t{4} << 20);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);  // like trained weights
    for (size_t i = 0; i < n; ++i) {
      f32[i] = i < pattern ? normal(rng) : f32[i - pattern];
      bf16[i] = FloatToBF16(f32[i]);
    }
    dst.assign(n * 2, 0);
    scales.assign(static_cast<size_t>((rows / 128) * (kCols / 128)), 0.0f);
    copy_src.assign(n * 3, 1);  // half the largest traffic: fp32 -> bf16 moves 6 bytes/element
    copy_dst.assign(n * 3, 0);
  }
};

Buffers& Get(int64_t rows) {
  static Buffers* small = nullptr;
  static Buffers* large = nullptr;
  Buffers*& b = rows == kSmallRows ? small : large;
  if (b == nullptr) {
    // Only one size lives at a time, so the large run has the memory to itself.
    delete (rows == kSmallRows ? large : small);
    (rows == kSmallRows ? large : small) = nullptr;
    b = new Buffers(rows);
  }
  return *b;
}

int64_t TrafficBytes(int64_t rows, DType src, DType dst) {
  int64_t bytes = rows * kCols * static_cast<int64_t>(DTypeSize(src) + DTypeSize(dst));
  if (dst == DType::kF8E4M3) bytes += (rows / 128) * (kCols / 128) * 4;
  return bytes;
}

void BM_Convert(benchmark::State& state, int64_t rows, DType src, DType dst, Mode mode) {
  Buffers& b = Get(rows);
  ConvertJob job;
  job.src = src == DType::kBF16 ? static_cast<const void*>(b.bf16.data())
                                : static_cast<const void*>(b.f32.data());
  job.src_dtype = src;
  job.rows = rows;
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
  state.SetBytesProcessed(state.iterations() * TrafficBytes(rows, src, dst));
  state.SetLabel(mode == Mode::kReference ? "scalar reference" : std::string(FastPathName()));
}

// Copies half of `traffic` bytes, so read + written equals the conversion's traffic.
void BM_Memcpy(benchmark::State& state, int64_t rows, int64_t traffic, int threads) {
  Buffers& b = Get(rows);
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

struct Size {
  const char* name;
  int64_t rows;
};
constexpr Size kSizes[] = {{"48MiB", kSmallRows}, {"384MiB", kLargeRows}};

void RegisterAll() {
  for (const Size& size : kSizes) {
    for (const Case& c : kCases) {
      std::string base = std::string(c.name) + "/" + size.name;
      int64_t traffic = TrafficBytes(size.rows, c.src, c.dst);
      auto add = [&](const char* what, auto&&... args) {
        benchmark::RegisterBenchmark((base + "/" + what).c_str(), args...)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      };
      if (size.rows == kSmallRows) {  // the scalar reference takes seconds at the large size
        add("reference", BM_Convert, size.rows, c.src, c.dst, Mode::kReference);
      }
      add("fast_1thread", BM_Convert, size.rows, c.src, c.dst, Mode::kFast1);
      add("memcpy_1thread", BM_Memcpy, size.rows, traffic, 1);
      add("fast_all_threads", BM_Convert, size.rows, c.src, c.dst, Mode::kFastAll);
      add("memcpy_all_threads", BM_Memcpy, size.rows, traffic, 0);
    }
  }
}

// The console output, plus the fast / memcpy ratios once everything has run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("bytes_per_second");
      if (it == run.counters.end() || run.error_occurred) continue;
      // With --benchmark_repetitions the ratios use the medians, else the one run.
      bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type != Run::RT_Iteration && !median) continue;
      std::string name = run.run_name.str();  // ends in "/real_time"
      const std::string suffix = "/real_time";
      if (name.ends_with(suffix)) name.resize(name.size() - suffix.size());
      if (median || !medians_.count(name)) rates_[name] = it->second.value;
      if (median) medians_.insert(name);
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nthreads (all) = %d, fast path = %.*s, rates: %s\n", ResolveThreadCount(0),
                static_cast<int>(FastPathName().size()), FastPathName().data(),
                medians_.empty() ? "single runs" : "medians of the repetitions");
    for (const Size& size : kSizes) {
      for (const Case& c : kCases) {
        std::string base = std::string(c.name) + "/" + size.name;
        auto rate = [&](const char* what) {
          auto it = rates_.find(base + "/" + what);
          return it == rates_.end() ? std::nan("") : it->second;
        };
        std::printf("%-20s fast_1thread / memcpy_1thread = %.2f   fast_all / memcpy_all = %.2f"
                    "   fast_1thread / reference = %.1f\n",
                    base.c_str(), rate("fast_1thread") / rate("memcpy_1thread"),
                    rate("fast_all_threads") / rate("memcpy_all_threads"),
                    rate("fast_1thread") / rate("reference"));
      }
    }
  }

 private:
  std::map<std::string, double> rates_;
  std::set<std::string> medians_;
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
