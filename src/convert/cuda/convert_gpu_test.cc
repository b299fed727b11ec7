// The CUDA path against ConvertReference: every byte of every destination and scale buffer
// (padding included) on random data and edge cases, many jobs per launch, and the refusals.
// Skips (and says so) without a CUDA device, so it runs in every ctest.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/e4m3_port.h"
#include "convert/cuda/gpu_test_kernels.h"
#include "convert/fp8_e4m3.h"
#include "core/float_bits.h"

namespace weightsync {
namespace {

constexpr uint8_t kCanary = 0xcd;

// Host buffers that jobs point into by (buffer, byte offset), so the same jobs run on the host
// reference and, with device copies of the buffers, on the GPU.
struct Where {
  int buffer = -1;
  int64_t offset = 0;  // bytes
};
struct Spec {
  ConvertJob job;  // pointers unset
  Where src, dst, scales;
};
struct Batch {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<Spec> specs;
  std::vector<std::string> names;  // keeps the job names alive

  int AddBuffer(size_t bytes, uint8_t fill) {
    buffers.emplace_back(bytes, fill);
    return static_cast<int>(buffers.size()) - 1;
  }
};

uint8_t* At(std::vector<std::vector<uint8_t>>& buffers, const Where& w) {
  return w.buffer < 0 ? nullptr : buffers[static_cast<size_t>(w.buffer)].data() + w.offset;
}
uint8_t* At(std::vector<void*>& buffers, const Where& w) {
  return w.buffer < 0 ? nullptr
                      : static_cast<uint8_t*>(buffers[static_cast<size_t>(w.buffer)]) + w.offset;
}

ConvertJob Bind(const Spec& spec, uint8_t* src, uint8_t* dst, uint8_t* scales) {
  ConvertJob job = spec.job;
  job.src = src;
  job.dst = dst;
  job.scales = reinterpret_cast<float*>(scales);
  return job;
}

struct Outcome {
  Status reference;  // first non-OK Status in job order
  Status gpu;
  std::vector<std::vector<uint8_t>> expected, got;
};

// Runs the batch through ConvertReference on the host and through one CudaConverter launch.
Outcome RunBatch(const Batch& batch) {
  Outcome out;
  out.expected = batch.buffers;
  for (const Spec& s : batch.specs) {
    Status status = ConvertReference(
        Bind(s, At(out.expected, s.src), At(out.expected, s.dst), At(out.expected, s.scales)));
    if (out.reference.ok()) out.reference = status;
  }
  std::vector<void*> device(batch.buffers.size(), nullptr);
  for (size_t i = 0; i < device.size(); ++i) {
    EXPECT_EQ(cudaMalloc(&device[i], std::max<size_t>(batch.buffers[i].size(), 1)), cudaSuccess);
    cudaMemcpy(device[i], batch.buffers[i].data(), batch.buffers[i].size(), cudaMemcpyHostToDevice);
  }
  std::vector<ConvertJob> jobs;
  for (const Spec& s : batch.specs) {
    jobs.push_back(Bind(s, At(device, s.src), At(device, s.dst), At(device, s.scales)));
  }
  cudaStream_t stream = nullptr;
  cudaStreamCreate(&stream);
  CudaConverter converter;
  out.gpu = converter.Enqueue(jobs, stream);
  if (out.gpu.ok()) out.gpu = converter.Finish();
  cudaStreamDestroy(stream);
  out.got = batch.buffers;
  for (size_t i = 0; i < device.size(); ++i) {
    cudaMemcpy(out.got[i].data(), device[i], out.got[i].size(), cudaMemcpyDeviceToHost);
    cudaFree(device[i]);
  }
  return out;
}

void ExpectSameBytes(const Outcome& out) {
  ASSERT_TRUE(out.reference.ok()) << out.reference.ToString();
  ASSERT_TRUE(out.gpu.ok()) << out.gpu.ToString();
  for (size_t b = 0; b < out.expected.size(); ++b) {
    for (size_t i = 0; i < out.expected[b].size(); ++i) {
      ASSERT_EQ(out.got[b][i], out.expected[b][i]) << "buffer " << b << " byte " << i;
    }
  }
}

// Stores f in `dtype` at element `index` of `bytes` (rounded to nearest for bf16 / fp16).
void Store(uint8_t* bytes, DType dtype, int64_t index, float f) {
  if (dtype == DType::kF32) {
    std::memcpy(bytes + index * 4, &f, 4);
    return;
  }
  const uint16_t h = dtype == DType::kBF16 ? FloatToBF16(f) : FloatToHalf(f);
  std::memcpy(bytes + index * 2, &h, 2);
}
void StoreBits(uint8_t* bytes, DType dtype, int64_t index, uint32_t bits) {
  if (dtype == DType::kF32) {
    std::memcpy(bytes + index * 4, &bits, 4);
  } else {
    const uint16_t h = static_cast<uint16_t>(bits);
    std::memcpy(bytes + index * 2, &h, 2);
  }
}

// Random values of mixed magnitude (each 64-row band has its own range, so blocks differ), with
// zeros, negative zeros, subnormals of the source dtype and exact bf16 ties of fp32 sprinkled in.
float RandomValue(std::mt19937& rng, int64_t row, DType dtype, uint32_t* bits_out) {
  static const int kLow[] = {-20, -8, -3, 2, 6};
  const int lo = kLow[(row / 64) % 5];
  const float sign = (rng() & 1) ? -1.0f : 1.0f;
  const uint32_t kind = rng() % 64;
  *bits_out = 0;
  if (kind == 0) return sign * 0.0f;
  if (kind == 1 && dtype == DType::kF32) *bits_out = rng() & 0x807fffffu;              // subnormal
  if (kind == 2 && dtype == DType::kF16) *bits_out = rng() & 0x83ffu;                  // subnormal
  if (kind == 2 && dtype == DType::kBF16) *bits_out = rng() & 0x807fu;                 // subnormal
  if (kind == 3 && dtype == DType::kF32) *bits_out = (rng() & 0xbfff0000u) | 0x8000u;  // tie
  if (*bits_out != 0) return NAN;
  std::uniform_real_distribution<float> unit(1.0f, 2.0f);
  return sign * std::ldexp(unit(rng), lo + static_cast<int>(rng() % 9));
}

void FillRandom(uint8_t* bytes, DType dtype, int64_t rows, int64_t cols, int64_t stride,
                uint32_t seed) {
  std::mt19937 rng(seed);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t bits = 0;
      const float f = RandomValue(rng, r, dtype, &bits);
      if (bits != 0) {
        StoreBits(bytes, dtype, r * stride + c, bits);
      } else {
        Store(bytes, dtype, r * stride + c, f);
      }
    }
  }
}

struct JobShape {
  DType src, dst;
  int64_t rows, cols;
  int64_t src_pad = 0, dst_pad = 0, scale_pad = 0;
  int64_t src_shift = 0, dst_shift = 0;  // elements before the region: misaligned pointers
};

// Adds one job with its own source, destination and scale buffers (canaries around them).
Spec& AddJob(Batch& batch, const JobShape& s, uint32_t seed) {
  const int64_t src_size = static_cast<int64_t>(DTypeSize(s.src));
  const int64_t dst_size = static_cast<int64_t>(DTypeSize(s.dst));
  Spec spec;
  ConvertJob& job = spec.job;
  job.src_dtype = s.src;
  job.dst_dtype = s.dst;
  job.rows = s.rows;
  job.cols = s.cols;
  job.src_row_stride = s.cols + s.src_pad;
  job.dst_row_stride = s.cols + s.dst_pad;
  batch.names.push_back("test.weight." + std::to_string(batch.specs.size()));
  spec.src = {
      batch.AddBuffer(static_cast<size_t>((s.src_shift + s.rows * job.src_row_stride) * src_size),
                      kCanary),
      s.src_shift * src_size};
  FillRandom(At(batch.buffers, spec.src), s.src, s.rows, s.cols, job.src_row_stride, seed);
  spec.dst = {
      batch.AddBuffer(static_cast<size_t>((s.dst_shift + s.rows * job.dst_row_stride) * dst_size),
                      kCanary),
      s.dst_shift * dst_size};
  if (s.dst == DType::kF8E4M3) {
    job.scale_row_stride = (s.cols + 127) / 128 + s.scale_pad;
    spec.scales = {
        batch.AddBuffer(static_cast<size_t>((s.rows + 127) / 128 * job.scale_row_stride * 4), 0xee),
        0};
  }
  batch.specs.push_back(spec);
  return batch.specs.back();
}

void NameJobs(Batch& batch) {
  for (size_t i = 0; i < batch.specs.size(); ++i) batch.specs[i].job.name = batch.names[i];
}

class ConvertGpuTest : public testing::Test {
 protected:
  void SetUp() override {
    const Status available = CudaConversionAvailable();
    if (!available.ok()) {
      std::printf("skipped: no CUDA device (%s)\n", available.message().c_str());
      GTEST_SKIP() << "skipped: no CUDA device";
    }
  }
};

const DType kSources[] = {DType::kBF16, DType::kF16, DType::kF32};
const DType kDestinations[] = {DType::kF8E4M3, DType::kBF16, DType::kF32};

TEST_F(ConvertGpuTest, RandomDataEveryDtypePairInOneLaunch) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1},     {127, 129},  {300, 257}, {128, 128},
                                                {1000, 3},  {3, 1000},   {129, 1},   {256, 384},
                                                {520, 700}, {130, 2200}, {2, 4100}};
  Batch batch;
  uint32_t seed = 1;
  for (DType src : kSources) {
    for (DType dst : kDestinations) {
      for (auto [rows, cols] : shapes) {
        // Aligned strides (vector accesses), odd ones and shifted pointers (element accesses).
        AddJob(batch, {src, dst, rows, cols, 0, 0, 0}, seed++);
        AddJob(batch, {src, dst, rows, cols, 5, 3, 2, 1, 3}, seed++);
        AddJob(batch, {src, dst, rows, cols, 8, 16, 1}, seed++);
      }
    }
  }
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
}

// One 256 x 400 matrix per source dtype whose 128-blocks each hold one kind of edge value.
void FillEdges(uint8_t* bytes, DType dtype, int64_t rows, int64_t cols, int64_t stride) {
  std::mt19937 rng(7);
  // Midpoints between neighbouring e4m3 values (ties), normal and subnormal.
  std::vector<float> ties;
  for (int code = 0; code < 0x7e; ++code) {
    ties.push_back(
        (E4M3ToFloat(static_cast<uint8_t>(code)) + E4M3ToFloat(static_cast<uint8_t>(code + 1))) /
        2);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t block = (r / 128) * 4 + c / 128;
      const float sign = (rng() & 1) ? -1.0f : 1.0f;
      const int64_t at = r * stride + c;
      float value = 0;
      switch (block) {
        case 0:
          value = sign * 0.0f;
          break;
        case 1:
          value = sign * 1e-30f * static_cast<float>(rng() % 100);
          break;
        case 2:  // subnormals of the source dtype
          StoreBits(bytes, dtype, at,
                    dtype == DType::kF32   ? rng() & 0x807fffffu
                    : dtype == DType::kF16 ? rng() & 0x83ffu
                                           : rng() & 0x807fu);
          continue;
        case 3:
          value = sign * (dtype == DType::kF16 ? 65504.0f : 3.3e38f);
          break;
        case 4:  // ties at scale 1 (the block's amax is 448)
          value = (r == 128 && c == 0) ? 448.0f : sign * ties[rng() % ties.size()];
          break;
        case 5:  // ties at scale 2
          value = (r == 128 && c == 128) ? -896.0f : sign * 2 * ties[rng() % ties.size()];
          break;
        case 6:  // exact bf16 rounding ties of fp32 (others: powers of two)
          if (dtype == DType::kF32) {
            StoreBits(bytes, dtype, at, (rng() & 0xbfff0000u) | 0x8000u);
            continue;
          }
          value = sign * std::ldexp(1.0f, static_cast<int>(rng() % 36) - 20);
          break;
        default:
          value = sign * std::ldexp(1.0f + static_cast<float>(rng() % 128) / 128,
                                    static_cast<int>(rng() % 20) - 10);
      }
      Store(bytes, dtype, at, value);
    }
  }
}

TEST_F(ConvertGpuTest, EdgeValues) {
  Batch batch;
  for (DType src : kSources) {
    for (DType dst : kDestinations) {
      Spec& spec = AddJob(batch, {src, dst, 256, 400, 2, 0, 1}, 1);
      FillEdges(At(batch.buffers, spec.src), src, 256, 400, spec.job.src_row_stride);
    }
  }
  NameJobs(batch);
  Outcome out = RunBatch(batch);
  ExpectSameBytes(out);
}

// A [E, R, C] stack converted as one job per expert into a [E, R, C] destination with
// [E, ceil(R/128), ceil(C/128)] scales, plus a fused gate_up: two sources stacked by rows.
TEST_F(ConvertGpuTest, ExpertStackAndFusedSources) {
  for (DType src : kSources) {
    Batch batch;
    const int64_t experts = 5, rows = 200, cols = 300;
    const int64_t src_size = static_cast<int64_t>(DTypeSize(src));
    const int64_t block_rows = 2, block_cols = 3;
    const int s = batch.AddBuffer(static_cast<size_t>(experts * rows * cols * src_size), 0);
    FillRandom(batch.buffers[0].data(), src, experts * rows, cols, cols, 11);
    const int d = batch.AddBuffer(static_cast<size_t>(experts * rows * cols), kCanary);
    const int sc =
        batch.AddBuffer(static_cast<size_t>(experts * block_rows * block_cols * 4), 0xee);
    batch.names.push_back("model.layers.3.mlp.experts.w2_weight");
    std::vector<std::string> contexts;
    for (int64_t e = 0; e < experts; ++e) contexts.push_back("expert " + std::to_string(e));
    for (int64_t e = 0; e < experts; ++e) {
      Spec spec;
      spec.job = ConvertJob{nullptr,        src,  rows,    cols,       cols,           nullptr,
                            DType::kF8E4M3, cols, nullptr, block_cols, batch.names[0], contexts[e]};
      spec.src = {s, e * rows * cols * src_size};
      spec.dst = {d, e * rows * cols};
      spec.scales = {sc, e * block_rows * block_cols * 4};
      batch.specs.push_back(spec);
    }
    // Fused: gate [256, 300] and up [128, 300] into one [384, 300] destination; up starts at
    // destination row 256 (a block boundary) and reports rows from its own origin.
    const int g = batch.AddBuffer(static_cast<size_t>(384 * 300 * src_size), 0);
    FillRandom(batch.buffers[static_cast<size_t>(g)].data(), src, 384, 300, 300, 12);
    const int fd = batch.AddBuffer(384 * 300, kCanary);
    const int fs = batch.AddBuffer(3 * 3 * 4, 0xee);
    for (int half = 0; half < 2; ++half) {
      Spec spec;
      spec.job = ConvertJob{
          nullptr,        src, half ? 128 : 256, 300, 300, nullptr, DType::kF8E4M3, 300, nullptr, 3,
          batch.names[0], "",  half ? 256 : 0,   0};
      spec.src = {g, half * 256 * 300 * src_size};
      spec.dst = {fd, half * 256 * 300};
      spec.scales = {fs, half * 2 * 3 * 4};
      batch.specs.push_back(spec);
    }
    ExpectSameBytes(RunBatch(batch));
  }
}

TEST_F(ConvertGpuTest, ThousandsOfSmallJobsInOneLaunch) {
  Batch batch;
  std::mt19937 rng(3);
  for (int i = 0; i < 3000; ++i) {
    const DType src = kSources[rng() % 3];
    const DType dst = kDestinations[rng() % 3];
    auto pick = [&](uint32_t n) { return static_cast<int64_t>(rng() % n); };
    AddJob(batch, {src, dst, 1 + pick(140), 1 + pick(300), pick(3), pick(2), pick(2)},
           static_cast<uint32_t>(i));
  }
  // Empty jobs in between are skipped.
  batch.specs.insert(batch.specs.begin() + 17, batch.specs[3]);
  batch.specs[17].job.rows = 0;
  batch.names.insert(batch.names.begin() + 17, "empty");
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
}

// A batch of 16-bit sources only (stages of 16-bit values, two CTAs per multiprocessor) with
// more tiles than CTAs, so each CTA converts tiles of many jobs of every kind in turn.
TEST_F(ConvertGpuTest, ManyJobsPerCtaIn16BitBatches) {
  Batch batch;
  std::mt19937 rng(9);
  for (int i = 0; i < 600; ++i) {
    const DType src = (i % 2) ? DType::kBF16 : DType::kF16;
    const DType dst = kDestinations[rng() % 3];
    auto pick = [&](uint32_t n) { return static_cast<int64_t>(rng() % n); };
    const bool aligned = rng() % 4 != 0;
    AddJob(batch,
           {src, dst, 1 + pick(700), 1 + pick(900), aligned ? 0 : 1 + pick(3), pick(2), pick(2),
            aligned ? 0 : 1},
           static_cast<uint32_t>(1000 + i));
  }
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
}

// fp32 casts without FP8 from fp32: the tiled kernel alone, with stages of fp32 (one CTA per
// multiprocessor) and more tiles than CTAs, next to tiles of 16-bit sources.
TEST_F(ConvertGpuTest, Fp32CastsInTheTiledKernel) {
  Batch batch;
  std::mt19937 rng(11);
  for (int i = 0; i < 400; ++i) {
    const DType src = kSources[i % 3];
    const DType dst = src == DType::kF32 ? kDestinations[1 + rng() % 2] : kDestinations[rng() % 3];
    auto pick = [&](uint32_t n) { return static_cast<int64_t>(rng() % n); };
    const bool aligned = rng() % 4 != 0;
    AddJob(batch,
           {src, dst, 1 + pick(600), 1 + pick(700), aligned ? 0 : 1 + pick(3), pick(2), pick(2),
            aligned ? 0 : 1},
           static_cast<uint32_t>(3000 + i));
  }
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
}

TEST_F(ConvertGpuTest, LargeMatrixFillsTheGpu) {
  Batch batch;
  AddJob(batch, {DType::kBF16, DType::kF8E4M3, 2048, 7168 + 64}, 5);
  AddJob(batch, {DType::kF32, DType::kF8E4M3, 1100, 4100, 4}, 6);
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
}

// Same message as the reference for the first refused element, in job order, whatever the
// other jobs of the launch hold.
TEST_F(ConvertGpuTest, RefusedValuesNameTensorAndCoordinate) {
  for (DType src : kSources) {
    for (DType dst : kDestinations) {
      SCOPED_TRACE(testing::Message() << DTypeTorchName(src) << " -> " << DTypeTorchName(dst));
      struct Plant {
        int64_t row, col;
        float value;
      };
      const std::vector<std::vector<Plant>> cases = {{{200, 5, INFINITY}, {17, 250, NAN}},
                                                     {{200, 5, INFINITY}, {17, 250, -INFINITY}},
                                                     {{200, 5, INFINITY}, {299, 256, NAN}},
                                                     {{299, 256, -INFINITY}}};
      for (const auto& plants : cases) {
        Batch batch;
        AddJob(batch, {src, dst, 300, 257, 1}, 4);  // clean job first
        Spec& bad = AddJob(batch, {src, dst, 300, 257, 1, 0, 0, 1}, 5);
        bad.job.context = "expert 5";
        bad.job.row_origin = 128;
        bad.job.col_origin = 3968;
        for (const Plant& p : plants) {
          Store(At(batch.buffers, bad.src), src, p.row * bad.job.src_row_stride + p.col, p.value);
        }
        AddJob(batch, {src, dst, 100, 100}, 6);
        Store(At(batch.buffers, batch.specs[2].src), src, 0, NAN);  // later job: not reported
        NameJobs(batch);
        const Outcome out = RunBatch(batch);
        EXPECT_EQ(out.reference.code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(out.gpu.code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(out.gpu.message(), out.reference.message());
        EXPECT_NE(out.gpu.message().find("(expert 5)"), std::string::npos) << out.gpu.message();
      }
    }
  }
}

// FP8 from fp32 goes to its own kernel, after the other jobs in the work list; the refusal
// reported is still the first in the caller's job order, whichever kernel found it.
TEST_F(ConvertGpuTest, RefusalsInJobOrderAcrossBothKernels) {
  for (const bool fp32_first : {true, false}) {
    SCOPED_TRACE(fp32_first ? "fp32 -> fp8 refused first" : "bf16 -> fp8 refused first");
    Batch batch;
    AddJob(batch, {DType::kF32, DType::kF8E4M3, 300, 257}, 21);  // clean
    AddJob(batch, {DType::kBF16, DType::kBF16, 200, 300}, 22);   // clean
    const DType first = fp32_first ? DType::kF32 : DType::kBF16;
    const DType second = fp32_first ? DType::kBF16 : DType::kF32;
    Spec& a = AddJob(batch, {first, DType::kF8E4M3, 300, 257}, 23);
    Store(At(batch.buffers, a.src), first, 250 * 257 + 3, NAN);
    AddJob(batch, {second, DType::kF8E4M3, 300, 257}, 24);  // (a is dangling from here on)
    Store(At(batch.buffers, batch.specs[3].src), second, 7, INFINITY);
    NameJobs(batch);
    const Outcome out = RunBatch(batch);
    EXPECT_EQ(out.reference.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(out.gpu.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(out.gpu.message(), out.reference.message());
    EXPECT_NE(out.gpu.message().find("test.weight.2: NaN"), std::string::npos) << out.gpu.message();
  }
}

// Contiguous casts are converted as rows of 128 elements; shapes and refusal coordinates must
// not notice.
TEST_F(ConvertGpuTest, ContiguousCastsOfAnyShape) {
  Batch batch;
  for (DType src : kSources) {
    for (DType dst : {DType::kBF16, DType::kF32}) {
      AddJob(batch, {src, dst, 1, 6144}, 1);
      AddJob(batch, {src, dst, 3, 640}, 2);
      AddJob(batch, {src, dst, 64, 256}, 3);
      AddJob(batch, {src, dst, 1, 100, 7}, 4);  // one row with a padded stride: also contiguous
    }
  }
  NameJobs(batch);
  ExpectSameBytes(RunBatch(batch));
  for (DType src : kSources) {
    for (auto [rows, cols, row, col] :
         {std::array<int64_t, 4>{1, 6144, 0, 5000}, std::array<int64_t, 4>{64, 256, 33, 200}}) {
      Batch bad;
      Spec& spec = AddJob(bad, {src, DType::kBF16, rows, cols}, 5);
      Store(At(bad.buffers, spec.src), src, row * cols + col, -INFINITY);
      NameJobs(bad);
      const Outcome out = RunBatch(bad);
      EXPECT_EQ(out.gpu.code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(out.gpu.message(), out.reference.message());
    }
  }
}

TEST_F(ConvertGpuTest, Fp32ThatOverflowsBf16) {
  for (DType dst : kDestinations) {
    Batch batch;
    Spec& spec = AddJob(batch, {DType::kF32, dst, 4, 20}, 3);
    StoreBits(At(batch.buffers, spec.src), DType::kF32, 2 * 20 + 19, 0x7f7f8000u);
    NameJobs(batch);
    const Outcome out = RunBatch(batch);
    if (dst == DType::kF32) {  // widening keeps it exactly
      ExpectSameBytes(out);
    } else {
      EXPECT_EQ(out.gpu.code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(out.gpu.message(), out.reference.message());
      EXPECT_NE(out.gpu.message().find("at [2, 19] overflows bfloat16"), std::string::npos);
    }
  }
}

// One converter for batch after batch: the error words stay on the device between launches and
// each launch's last CTA publishes and resets them, so a refusal is reported by its own batch
// only, whether the work list travels in the launch (a few jobs) or is uploaded (many), and
// through either kernel.
TEST_F(ConvertGpuTest, RefusalsDoNotOutliveTheirBatch) {
  CudaConverter converter;
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (const int jobs : {1, 8, 9, 40}) {
    for (const DType src : {DType::kBF16, DType::kF32}) {
      for (const bool refused : {true, false, true, false}) {
        SCOPED_TRACE(testing::Message() << jobs << " jobs from " << DTypeTorchName(src)
                                        << (refused ? ", one refused" : ", clean"));
        Batch batch;
        for (int j = 0; j < jobs; ++j) {
          AddJob(batch, {src, j % 3 == 1 ? DType::kBF16 : DType::kF8E4M3, 130, 260}, 40 + j);
        }
        if (refused) Store(At(batch.buffers, batch.specs[jobs - 1].src), src, 129 * 260, NAN);
        NameJobs(batch);
        Status reference;
        std::vector<std::vector<uint8_t>> expected = batch.buffers;
        for (const Spec& s : batch.specs) {
          const Status status = ConvertReference(
              Bind(s, At(expected, s.src), At(expected, s.dst), At(expected, s.scales)));
          if (reference.ok()) reference = status;
        }
        std::vector<void*> device(batch.buffers.size(), nullptr);
        for (size_t i = 0; i < device.size(); ++i) {
          ASSERT_EQ(cudaMalloc(&device[i], batch.buffers[i].size()), cudaSuccess);
          cudaMemcpy(device[i], batch.buffers[i].data(), batch.buffers[i].size(),
                     cudaMemcpyHostToDevice);
        }
        std::vector<ConvertJob> bound;
        for (const Spec& s : batch.specs) {
          bound.push_back(Bind(s, At(device, s.src), At(device, s.dst), At(device, s.scales)));
        }
        ASSERT_TRUE(converter.Enqueue(bound, stream).ok());
        const Status gpu = converter.Finish();
        EXPECT_EQ(gpu.code(), reference.code());
        EXPECT_EQ(gpu.message(), reference.message());
        for (size_t i = 0; i < device.size(); ++i) {
          if (!refused) {
            std::vector<uint8_t> got(batch.buffers[i].size());
            cudaMemcpy(got.data(), device[i], got.size(), cudaMemcpyDeviceToHost);
            EXPECT_EQ(got, expected[i]) << "buffer " << i;
          }
          cudaFree(device[i]);
        }
      }
    }
  }
  cudaStreamDestroy(stream);
}

TEST_F(ConvertGpuTest, MalformedJobsLaunchNothing) {
  Batch batch;
  AddJob(batch, {DType::kBF16, DType::kF8E4M3, 10, 10}, 1);
  AddJob(batch, {DType::kBF16, DType::kF8E4M3, 10, 10}, 2);
  NameJobs(batch);
  batch.specs[1].scales = {};  // no scale buffer
  const Outcome out = RunBatch(batch);
  EXPECT_EQ(out.gpu.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.gpu.message(), out.reference.message());
  EXPECT_EQ(out.got, batch.buffers);  // not even the valid first job ran
}

TEST_F(ConvertGpuTest, EmptyBatchesAndOrderOfCalls) {
  CudaConverter converter;
  EXPECT_EQ(converter.Finish().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(converter.Enqueue({}, nullptr).ok());
  EXPECT_EQ(converter.Enqueue({}, nullptr).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(converter.Finish().ok());
  EXPECT_TRUE(ConvertOnDevice({}, nullptr).ok());
}

// The kernel's arithmetic on every input it can meet: the hardware encoder on every fp32 in
// [0, 448], and the quantizer on every (value, block amax) pair of bf16 and of fp16.
TEST_F(ConvertGpuTest, EncoderMatchesDefinitionOnEveryFloat) {
  auto result = cuda_convert::SweepEncoder();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->checked, 0x43e00001u);  // fp32 bits 0 .. 448
  EXPECT_EQ(result->mismatches, 0u) << "e.g. fp32 bits 0x" << std::hex << result->example;
}

TEST_F(ConvertGpuTest, QuantizerMatchesDivisionForEveryBf16AndFp16Pair) {
  for (bool half : {false, true}) {
    auto result = cuda_convert::SweepQuantizer(half);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    // Pairs with x <= amax over amax bits 0 .. largest finite: n (n + 1) / 2.
    const uint64_t n = half ? 0x7c00u : 0x7f80u;
    EXPECT_EQ(result->checked, n * (n + 1) / 2);
    EXPECT_EQ(result->mismatches, 0u)
        << (half ? "fp16" : "bf16") << " amax/x bits 0x" << std::hex << result->example;
  }
}

// The fp32 -> FP8 kernel rounds its source with the hardware bf16 pair converter.
TEST_F(ConvertGpuTest, Bf16PairConverterMatchesRoundingOnEveryFloat) {
  auto result = cuda_convert::SweepBF16Pair();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->checked, uint64_t{1} << 31);  // every magnitude, each with both signs
  EXPECT_EQ(result->mismatches, 0u) << "e.g. fp32 bits 0x" << std::hex << result->example;
}

// The device-side definition used by the sweeps is FloatToE4M3 itself (host check, no GPU).
TEST(ConvertGpuPortTest, PortMatchesFloatToE4M3) {
  for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 61) {
    const uint32_t b = static_cast<uint32_t>(bits);
    ASSERT_EQ(cuda_convert::PortFloatToE4M3(b), FloatToE4M3(BitsToFloat(b))) << std::hex << b;
  }
  for (int code = 0; code < 0x7e; ++code) {  // every tie and its neighbours, both signs
    const float mid =
        (E4M3ToFloat(static_cast<uint8_t>(code)) + E4M3ToFloat(static_cast<uint8_t>(code + 1))) / 2;
    for (int delta = -1; delta <= 1; ++delta) {
      const uint32_t b = FloatToBits(mid) + static_cast<uint32_t>(delta);
      ASSERT_EQ(cuda_convert::PortFloatToE4M3(b), FloatToE4M3(BitsToFloat(b))) << std::hex << b;
      ASSERT_EQ(cuda_convert::PortFloatToE4M3(b | 0x80000000u),
                FloatToE4M3(BitsToFloat(b | 0x80000000u)));
    }
  }
}

}  // namespace
}  // namespace weightsync
