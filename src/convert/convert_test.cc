#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
#include "convert/convert_internal.h"
#include "convert/fp8_e4m3.h"
#include "core/float_bits.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace weightsync {
namespace {

using convert_internal::ConvertWithPath;
using convert_internal::Path;

constexpr uint8_t kCanary = 0xcd;

// A source matrix of any dtype, with row padding, built from fp32 values.
struct Source {
  DType dtype;
  int64_t rows, cols, stride;
  std::vector<uint8_t> bytes;

  Source(DType d, int64_t r, int64_t c, int64_t pad = 0)
      : dtype(d), rows(r), cols(c), stride(c + pad),
        bytes(static_cast<size_t>(r * (c + pad)) * DTypeSize(d), kCanary) {}

  void SetBits(int64_t r, int64_t c, uint32_t bits) {
    size_t at = static_cast<size_t>(r * stride + c);
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data() + at * 4, &bits, 4);
    } else {
      uint16_t half = static_cast<uint16_t>(bits);
      std::memcpy(bytes.data() + at * 2, &half, 2);
    }
  }
  // Stores f in this dtype (rounded to nearest for bf16 / fp16).
  void Set(int64_t r, int64_t c, float f) {
    switch (dtype) {
      case DType::kBF16: SetBits(r, c, FloatToBF16(f)); break;
      case DType::kF16: SetBits(r, c, FloatToHalf(f)); break;
      default: SetBits(r, c, FloatToBits(f)); break;
    }
  }
};

// A destination (plus scales for fp8) with padding pre-filled with a canary.
struct Output {
  std::vector<uint8_t> data;
  std::vector<float> scales;
};

ConvertJob MakeJob(const Source& src, DType dst_dtype, Output& out, int64_t dst_pad = 3,
                   int64_t scale_pad = 2) {
  ConvertJob job;
  job.src = src.bytes.data();
  job.src_dtype = src.dtype;
  job.rows = src.rows;
  job.cols = src.cols;
  job.src_row_stride = src.stride;
  job.dst_dtype = dst_dtype;
  job.dst_row_stride = src.cols + dst_pad;
  out.data.assign(static_cast<size_t>(src.rows * job.dst_row_stride) * DTypeSize(dst_dtype),
                  kCanary);
  job.dst = out.data.data();
  if (dst_dtype == DType::kF8E4M3) {
    int64_t block_rows = (src.rows + 127) / 128;
    job.scale_row_stride = (src.cols + 127) / 128 + scale_pad;
    out.scales.assign(static_cast<size_t>(block_rows * job.scale_row_stride), -7.0f);
    job.scales = out.scales.data();
  }
  job.name = "test.weight";
  return job;
}

// Random values of mixed magnitude (each row band has its own range, so blocks differ), with
// zeros, negative zeros, subnormals and exact ties sprinkled in.
void FillRandom(Source& src, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(1.0f, 2.0f);
  for (int64_t r = 0; r < src.rows; ++r) {
    int band = static_cast<int>((r / 64) % 5);
    int lo = std::vector<int>{-20, -8, -3, 2, 6}[band];
    std::uniform_int_distribution<int> exponent(lo, lo + 8);
    for (int64_t c = 0; c < src.cols; ++c) {
      uint32_t kind = rng() % 64;
      float sign = (rng() & 1) ? -1.0f : 1.0f;
      if (kind == 0) {
        src.Set(r, c, 0.0f * sign);
      } else if (kind == 1 && src.dtype == DType::kF32) {
        src.SetBits(r, c, (rng() & 0x807fffffu));  // fp32 subnormal
      } else if (kind == 2 && src.dtype == DType::kF16) {
        src.SetBits(r, c, (rng() & 0x83ffu));  // fp16 subnormal
      } else if (kind == 3 && src.dtype == DType::kF32) {
        src.SetBits(r, c, (rng() & 0xbfff0000u) | 0x8000u);  // exact bf16 rounding tie
      } else {
        src.Set(r, c, sign * std::ldexp(unit(rng), exponent(rng)));
      }
    }
  }
}

std::string Hex(const std::vector<uint8_t>& v, size_t at) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%02x", v[at]);
  return buf;
}

// Runs the reference, then every fast variant, and requires identical bytes everywhere
// (padding included, so nobody writes outside the region).
void ExpectFastMatchesReference(const Source& src, DType dst_dtype) {
  Output expected;
  ConvertJob ref_job = MakeJob(src, dst_dtype, expected);
  Status ref_status = ConvertReference(ref_job);
  ASSERT_TRUE(ref_status.ok()) << ref_status.ToString();
  std::vector<Path> paths = {Path::kScalar};
  if (convert_internal::Avx2Supported()) paths.push_back(Path::kAvx2);
  if (convert_internal::Avx512Supported()) paths.push_back(Path::kAvx512);
  for (Path path : paths) {
    for (int threads = 1; threads <= 4; ++threads) {
      Output got;
      ConvertJob job = MakeJob(src, dst_dtype, got);
      Status status = ConvertWithPath(job, threads, path);
      ASSERT_TRUE(status.ok()) << status.ToString();
      SCOPED_TRACE(testing::Message() << "path " << static_cast<int>(path) << " threads "
                                      << threads << " shape " << src.rows << "x" << src.cols);
      for (size_t i = 0; i < got.data.size(); ++i) {
        ASSERT_EQ(got.data[i], expected.data[i]) << "byte " << i << " expected "
                                                 << Hex(expected.data, i);
      }
      ASSERT_EQ(0, std::memcmp(got.scales.data(), expected.scales.data(),
                               got.scales.size() * sizeof(float)));
    }
  }
  Output fast;
  ConvertJob job = MakeJob(src, dst_dtype, fast);
  ASSERT_TRUE(ConvertFast(job, 0).ok());
  ASSERT_EQ(fast.data, expected.data);
  ASSERT_EQ(0, std::memcmp(fast.scales.data(), expected.scales.data(),
                           fast.scales.size() * sizeof(float)));
}

struct Shape2 {
  int64_t rows, cols;
};

TEST(ConvertTest, FastMatchesReferenceOnRandomData) {
  const Shape2 shapes[] = {{1, 1},   {127, 129}, {300, 257}, {128, 128}, {1000, 3},
                           {3, 1000}, {129, 1},  {256, 384}, {520, 700}, {130, 2200}, {2, 4100}};
  uint32_t seed = 1;
  for (DType src_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (DType dst_dtype : {DType::kF8E4M3, DType::kBF16, DType::kF32}) {
      for (Shape2 shape : shapes) {
        for (int64_t pad : {0, 5}) {
          Source src(src_dtype, shape.rows, shape.cols, pad);
          FillRandom(src, seed++);
          SCOPED_TRACE(testing::Message() << DTypeTorchName(src_dtype) << " -> "
                                          << DTypeTorchName(dst_dtype) << " pad " << pad);
          ExpectFastMatchesReference(src, dst_dtype);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(ConvertTest, EdgeValuesMatchAcrossPaths) {
  // One 256x300 matrix whose blocks each hold one kind of edge case.
  for (DType src_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    Source src(src_dtype, 256, 300, 2);
    std::mt19937 rng(7);
    for (int64_t r = 0; r < src.rows; ++r) {
      for (int64_t c = 0; c < src.cols; ++c) {
        int64_t block = (r / 128) * 3 + c / 128;
        float sign = (rng() & 1) ? -1.0f : 1.0f;
        float value = 0.0f;
        switch (block) {
          case 0: value = sign * 0.0f; break;                                   // all zero
          case 1: value = sign * 1e-30f * static_cast<float>(rng() % 100); break;  // tiny
          case 2: value = sign * std::ldexp(static_cast<float>(rng() % 1024), -24); break;
          case 3: value = sign * (src_dtype == DType::kF16 ? 65504.0f : 3.3e38f); break;
          case 4: value = sign * static_cast<float>(rng() % 8 + 1) * 0.0625f * 17.0f; break;
          default: value = sign * std::ldexp(1.0f, static_cast<int>(rng() % 36) - 20); break;
        }
        src.Set(r, c, value);
      }
    }
    for (DType dst_dtype : {DType::kF8E4M3, DType::kBF16, DType::kF32}) {
      ExpectFastMatchesReference(src, dst_dtype);
    }
  }
}

TEST(ConvertTest, GoldenFp8Bytes) {
  // Independently worked out: amax 448 gives scale 1, so codes are the e4m3 encodings.
  Source src(DType::kBF16, 1, 9);
  const float values[] = {1.0f, -2.5f, 448.0f, 0.5f, -0.0f, std::ldexp(3.0f, -10),
                          1.0625f, 1.1875f, -448.0f};
  for (int c = 0; c < 9; ++c) src.Set(0, c, values[c]);
  const uint8_t golden[] = {0x38, 0xc2, 0x7e, 0x30, 0x80, 0x02, 0x38, 0x3a, 0xfe};
  for (bool fast : {false, true}) {
    Output out;
    ConvertJob job = MakeJob(src, DType::kF8E4M3, out, 0, 0);
    ASSERT_TRUE((fast ? ConvertFast(job, 1) : ConvertReference(job)).ok());
    EXPECT_EQ(out.scales[0], 1.0f);
    for (int c = 0; c < 9; ++c) EXPECT_EQ(out.data[c], golden[c]) << c;
  }
  // amax 896 (448 * 2): scale 2.
  Source src2(DType::kF32, 2, 40);
  for (int c = 0; c < 40; ++c) {
    src2.Set(0, c, 1.0f);
    src2.Set(1, c, c == 39 ? 896.0f : -2.5f);
  }
  for (bool fast : {false, true}) {
    Output out;
    ConvertJob job = MakeJob(src2, DType::kF8E4M3, out, 0, 0);
    ASSERT_TRUE((fast ? ConvertFast(job, 2) : ConvertReference(job)).ok());
    EXPECT_EQ(out.scales[0], 2.0f);
    EXPECT_EQ(out.data[0], 0x30);        // 0.5
    EXPECT_EQ(out.data[40], 0xba);       // -1.25
    EXPECT_EQ(out.data[79], 0x7e);       // 448
  }
}

TEST(ConvertTest, AllZeroBlockUsesScaleFloor) {
  Source src(DType::kBF16, 130, 200);
  for (int64_t r = 0; r < 130; ++r) {
    for (int64_t c = 0; c < 200; ++c) src.Set(r, c, (r + c) % 2 ? -0.0f : 0.0f);
  }
  for (bool fast : {false, true}) {
    Output out;
    ConvertJob job = MakeJob(src, DType::kF8E4M3, out, 0, 0);
    ASSERT_TRUE((fast ? ConvertFast(job, 2) : ConvertReference(job)).ok());
    for (float s : out.scales) EXPECT_EQ(FloatToBits(s), FloatToBits(1e-12f));
    for (int64_t r = 0; r < 130; ++r) {
      for (int64_t c = 0; c < 200; ++c) {
        ASSERT_EQ(out.data[static_cast<size_t>(r * 200 + c)], (r + c) % 2 ? 0x80 : 0x00);
      }
    }
  }
}

TEST(ConvertTest, AmaxElementAlwaysEncodesTo448) {
  // amax / (amax / 448) is not always exactly 448 in fp32; the clamp must catch the excess.
  std::mt19937 rng(99);
  Source src(DType::kF32, 1, 128 * 64);
  for (int64_t b = 0; b < 64; ++b) {
    // Above the 1e-12 scale floor, below bf16 max.
    float amax = BF16ToFloat(static_cast<uint16_t>(0x3000 + rng() % 0x4f00));
    for (int64_t c = 0; c < 128; ++c) src.Set(0, b * 128 + c, (c == 5 ? -amax : amax / 3));
  }
  for (bool fast : {false, true}) {
    Output out;
    ConvertJob job = MakeJob(src, DType::kF8E4M3, out, 0, 0);
    ASSERT_TRUE((fast ? ConvertFast(job, 1) : ConvertReference(job)).ok());
    for (int64_t b = 0; b < 64; ++b) {
      EXPECT_EQ(out.data[static_cast<size_t>(b * 128 + 5)], 0xfe)
          << b << " scale " << out.scales[static_cast<size_t>(b)];
    }
  }
}

TEST(ConvertTest, Bf16RoundingTies) {
  Source src(DType::kF32, 1, 4);
  src.SetBits(0, 0, 0x3f808000u);  // tie, even lsb: down to 0x3f80
  src.SetBits(0, 1, 0x3f818000u);  // tie, odd lsb: up to 0x3f82
  src.SetBits(0, 2, 0xbf808001u);  // above tie: up (in magnitude) to 0xbf81
  src.SetBits(0, 3, 0x7f7f7fffu);  // largest fp32 that still rounds to a finite bf16
  const uint16_t golden[] = {0x3f80, 0x3f82, 0xbf81, 0x7f7f};
  for (bool fast : {false, true}) {
    Output out;
    ConvertJob job = MakeJob(src, DType::kBF16, out, 0);
    ASSERT_TRUE((fast ? ConvertFast(job, 1) : ConvertReference(job)).ok());
    for (int c = 0; c < 4; ++c) {
      uint16_t got = 0;
      std::memcpy(&got, out.data.data() + 2 * c, 2);
      EXPECT_EQ(got, golden[c]) << c;
    }
  }
}

TEST(ConvertTest, ResultIgnoresCallerFloatingPointEnvironment) {
#if defined(__x86_64__)
  Source src(DType::kF32, 130, 131);
  FillRandom(src, 42);
  for (DType dst : {DType::kF8E4M3, DType::kBF16}) {
    Output expected, got;
    ConvertJob ref_job = MakeJob(src, dst, expected);
    ASSERT_TRUE(ConvertReference(ref_job).ok());
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u | 0x6000u);  // FTZ, DAZ, round toward zero
    ConvertJob job = MakeJob(src, dst, got);
    Status fast = ConvertFast(job, 1);
    _mm_setcsr(saved);
    ASSERT_TRUE(fast.ok());
    EXPECT_EQ(got.data, expected.data);
    EXPECT_EQ(got.scales, expected.scales);
  }
#else
  GTEST_SKIP() << "x86 only";
#endif
}

// Every path must refuse with the same message naming the first bad element in whole-tensor
// coordinates.
void ExpectRefused(const Source& src, DType dst_dtype, const std::string& message) {
  std::vector<Status> results;
  {
    Output out;
    ConvertJob job = MakeJob(src, dst_dtype, out);
    job.name = "model.layers.3.mlp.experts.w13_weight";
    job.context = "expert 5";
    job.row_origin = 128;
    job.col_origin = 3968;
    results.push_back(ConvertReference(job));
    results.push_back(ConvertFast(job, 3));
    for (int threads : {1, 2, 4}) {
      results.push_back(ConvertWithPath(job, threads, Path::kScalar));
      if (convert_internal::Avx2Supported()) {
        results.push_back(ConvertWithPath(job, threads, Path::kAvx2));
      }
      if (convert_internal::Avx512Supported()) {
        results.push_back(ConvertWithPath(job, threads, Path::kAvx512));
      }
    }
  }
  for (const Status& status : results) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), message);
  }
}

TEST(ConvertTest, NonFiniteValuesAreRefusedWithCoordinates) {
  const std::string prefix = "tensor model.layers.3.mlp.experts.w13_weight: ";
  for (DType src_dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (DType dst_dtype : {DType::kF8E4M3, DType::kBF16, DType::kF32}) {
      SCOPED_TRACE(testing::Message() << DTypeTorchName(src_dtype) << " -> "
                                      << DTypeTorchName(dst_dtype));
      Source src(src_dtype, 300, 257, 1);
      FillRandom(src, 5);
      src.Set(200, 5, INFINITY);   // in an earlier block, but later in row-major order
      src.Set(17, 250, NAN);
      ExpectRefused(src, dst_dtype, prefix + "NaN at [145, 4218] (expert 5)");
      src.Set(17, 250, -INFINITY);
      ExpectRefused(src, dst_dtype, prefix + "-Inf at [145, 4218] (expert 5)");
      src.Set(17, 250, 1.0f);
      src.Set(299, 256, NAN);  // the last element (partial edge block): the Inf comes first
      ExpectRefused(src, dst_dtype, prefix + "Inf at [328, 3973] (expert 5)");
    }
  }
}

TEST(ConvertTest, Fp32ThatOverflowsBf16IsRefused) {
  Source src(DType::kF32, 4, 20);
  FillRandom(src, 3);
  src.SetBits(2, 19, 0x7f7f8000u);  // rounds to Inf in bf16
  for (DType dst : {DType::kF8E4M3, DType::kBF16}) {
    Output out;
    ConvertJob job = MakeJob(src, dst, out);
    for (Status status : {ConvertReference(job), ConvertFast(job, 1)}) {
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(status.message().find("at [2, 19] overflows bfloat16"), std::string::npos)
          << status.message();
    }
  }
  // Widening to fp32 keeps it exactly, so that is fine.
  Output out;
  ConvertJob job = MakeJob(src, DType::kF32, out);
  EXPECT_TRUE(ConvertReference(job).ok());
  EXPECT_TRUE(ConvertFast(job, 1).ok());
}

TEST(ConvertTest, BadJobsAreRefusedWithoutTouchingMemory) {
  Source src(DType::kBF16, 10, 10);
  FillRandom(src, 1);
  auto expect_invalid = [&](auto mutate, DType dst = DType::kF8E4M3) {
    Output out;
    ConvertJob job = MakeJob(src, dst, out);
    mutate(job);
    EXPECT_EQ(ConvertReference(job).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(ConvertFast(job, 2).code(), StatusCode::kInvalidArgument);
  };
  expect_invalid([](ConvertJob& j) { j.src_dtype = DType::kI8; });
  expect_invalid([](ConvertJob& j) { j.dst_dtype = DType::kF8E5M2; });
  expect_invalid([](ConvertJob& j) { j.rows = -1; });
  expect_invalid([](ConvertJob& j) { j.src_row_stride = 9; });
  expect_invalid([](ConvertJob& j) { j.dst_row_stride = 2; });
  expect_invalid([](ConvertJob& j) { j.scales = nullptr; });
  expect_invalid([](ConvertJob& j) { j.scale_row_stride = 0; });
  expect_invalid([](ConvertJob& j) { j.col_origin = -128; });
  expect_invalid([](ConvertJob& j) { j.src = nullptr; });
  expect_invalid([](ConvertJob& j) { j.src_row_stride = int64_t{1} << 62; });
  // Origins only place error coordinates; any non-negative origin is fine.
  Output out;
  ConvertJob job = MakeJob(src, DType::kBF16, out);
  job.row_origin = 3;
  EXPECT_TRUE(ConvertFast(job, 1).ok());
  // Empty regions are a no-op.
  job.rows = 0;
  job.src = nullptr;
  EXPECT_TRUE(ConvertReference(job).ok());
  EXPECT_TRUE(ConvertFast(job, 1).ok());
}

TEST(ConvertTest, FastPathNameIsKnown) {
  std::string_view name = FastPathName();
  EXPECT_TRUE(name == "avx512" || name == "avx2" || name == "scalar") << name;
}

}  // namespace
}  // namespace weightsync
