#include "convert/finite_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/float_bits.h"

namespace weightsync {
namespace {

TEST(FiniteCheck, FindsTheFirstNanOrInfInEveryDtype) {
  std::vector<float> f32(10000, 1.5f);
  EXPECT_EQ(FirstNonFinite(f32.data(), DType::kF32, 10000), -1);
  f32[9000] = std::numeric_limits<float>::infinity();
  f32[9999] = std::nanf("");
  EXPECT_EQ(FirstNonFinite(f32.data(), DType::kF32, 10000), 9000);
  EXPECT_EQ(FirstNonFinite(f32.data(), DType::kF32, 9000), -1);
  f32[4096] = -std::numeric_limits<float>::infinity();  // first element of the second chunk
  EXPECT_EQ(FirstNonFinite(f32.data(), DType::kF32, 10000), 4096);

  std::vector<uint16_t> bf16(5000, 0x3f80);  // 1.0
  bf16[4095] = 0xff80;                        // -inf, last of the first chunk
  EXPECT_EQ(FirstNonFinite(bf16.data(), DType::kBF16, 5000), 4095);
  bf16[4095] = 0x7f7f;  // the largest finite bf16
  EXPECT_EQ(FirstNonFinite(bf16.data(), DType::kBF16, 5000), -1);
  bf16[7] = 0x7fc1;  // a NaN
  EXPECT_EQ(FirstNonFinite(bf16.data(), DType::kBF16, 5000), 7);

  std::vector<uint16_t> f16(100, 0x3c00);
  f16[99] = 0x7bff;  // 65504, finite
  EXPECT_EQ(FirstNonFinite(f16.data(), DType::kF16, 100), -1);
  f16[50] = 0x7c00;  // inf
  EXPECT_EQ(FirstNonFinite(f16.data(), DType::kF16, 100), 50);
}

TEST(FiniteCheck, AgreesWithStdIsfiniteOnRandomBits) {
  uint32_t state = 12345;
  std::vector<uint32_t> bits(20000);
  for (auto& b : bits) b = state = state * 1664525u + 1013904223u;
  int64_t expected = -1;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (!std::isfinite(BitsToFloat(bits[i]))) {
      expected = static_cast<int64_t>(i);
      break;
    }
  }
  EXPECT_EQ(FirstNonFinite(bits.data(), DType::kF32, static_cast<int64_t>(bits.size())), expected);
  EXPECT_EQ(FirstNonFinite(bits.data(), DType::kF8E4M3, 100), -1);
}

}  // namespace
}  // namespace weightsync
