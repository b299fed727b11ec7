#include "core/float_bits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace weightsync {
namespace {

// Independent definition of round-to-nearest-even onto the bf16 grid: of the two bf16 values that
// bracket x (truncation and its successor), take the nearer; on a tie, the one with an even last bit.
uint16_t NearestEvenBF16(float x) {
  uint32_t bits = FloatToBits(x);
  uint16_t down = static_cast<uint16_t>(bits >> 16);
  uint16_t up = static_cast<uint16_t>(down + 1);
  double dx = x, dd = BF16ToFloat(down), du = BF16ToFloat(up);
  double err_down = std::fabs(dx - dd), err_up = std::fabs(du - dx);
  if (std::isinf(du)) err_up = std::ldexp(1.0, 128) - std::fabs(dx);  // overflow threshold
  if (err_down < err_up) return down;
  if (err_up < err_down) return up;
  return (down & 1u) ? up : down;
}

TEST(FloatBits, BF16RoundTripsEveryValue) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = BF16ToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(f))));
      continue;
    }
    EXPECT_EQ(FloatToBF16(f), b);
  }
}

TEST(FloatBits, BF16RoundsToNearestEven) {
  std::mt19937 rng(1);
  for (int i = 0; i < 1000000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float x = BitsToFloat(bits);
    if (std::isnan(x) || std::isinf(x)) continue;
    ASSERT_EQ(FloatToBF16(x), NearestEvenBF16(x)) << "bits " << std::hex << bits;
  }
  // Exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7; even is 1.
  EXPECT_EQ(FloatToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBF16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBF16(INFINITY), 0x7f80);
  EXPECT_EQ(FloatToBF16(3.4028235e38f), 0x7f80);  // rounds up past the largest bf16
}

TEST(FloatBits, HalfMatchesCompilerConversion) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = HalfToFloat(static_cast<uint16_t>(h));
    _Float16 native = std::bit_cast<_Float16>(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(static_cast<float>(native)));
      continue;
    }
    EXPECT_EQ(FloatToBits(f), FloatToBits(static_cast<float>(native))) << h;
    EXPECT_EQ(FloatToHalf(f), h);
  }
  std::mt19937 rng(2);
  for (int i = 0; i < 1000000; ++i) {
    float x = BitsToFloat(static_cast<uint32_t>(rng()));
    if (std::isnan(x)) continue;
    uint16_t native = std::bit_cast<uint16_t>(static_cast<_Float16>(x));
    ASSERT_EQ(FloatToHalf(x), native) << x;
  }
}

}  // namespace
}  // namespace weightsync
