#include "convert/fp8_e4m3.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <limits>
#include <random>
#include <vector>

#include "convert/convert_internal.h"
#include "core/float_bits.h"

namespace weightsync {
namespace {

// An independent definition of RNE to e4m3fn, from the table of the 127 non-negative finite
// values: find the neighbours lo <= |f| < hi and pick the nearer, ties to the even code. The
// midpoint test 2|f| vs lo + hi is exact in double (all terms are e4m3 values or fp32 * 2).
class E4M3Oracle {
 public:
  E4M3Oracle() {
    for (int code = 0; code <= 0x7e; ++code) {
      int exponent = (code >> 3) & 0xf;
      int mantissa = code & 7;
      values_.push_back(exponent == 0 ? std::ldexp(mantissa, -9)
                                      : std::ldexp(1.0 + mantissa / 8.0, exponent - 7));
    }
  }

  uint8_t Encode(float f) const {
    if (std::isnan(f)) return 0x7f;
    uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
    double a = std::fabs(static_cast<double>(f));
    if (a >= 448.0) return sign | 0x7e;
    // values_[hi - 1] <= a < values_[hi]
    int hi = static_cast<int>(std::upper_bound(values_.begin(), values_.end(), a) - values_.begin());
    int lo = hi - 1;
    double twice = 2.0 * a;
    double mid_sum = values_[lo] + values_[hi];
    int code = twice < mid_sum ? lo : twice > mid_sum ? hi : (lo % 2 == 0 ? lo : hi);
    return static_cast<uint8_t>(sign | code);
  }

  double Value(int code) const { return values_[code]; }

 private:
  std::vector<double> values_;
};

TEST(E4M3Test, DecodesGoldenCodes) {
  EXPECT_EQ(E4M3ToFloat(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(E4M3ToFloat(0x80)));
  EXPECT_EQ(E4M3ToFloat(0x38), 1.0f);
  EXPECT_EQ(E4M3ToFloat(0xc2), -2.5f);
  EXPECT_EQ(E4M3ToFloat(0x7e), 448.0f);
  EXPECT_EQ(E4M3ToFloat(0xfe), -448.0f);
  EXPECT_EQ(E4M3ToFloat(0x77), 240.0f);
  EXPECT_EQ(E4M3ToFloat(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(E4M3ToFloat(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(E4M3ToFloat(0x07), std::ldexp(7.0f, -9));
  EXPECT_TRUE(std::isnan(E4M3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(E4M3ToFloat(0xff)));
}

TEST(E4M3Test, EveryCodeRoundTrips) {
  E4M3Oracle oracle;
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    float value = E4M3ToFloat(static_cast<uint8_t>(code));
    EXPECT_EQ(static_cast<double>(std::fabs(value)), oracle.Value(code & 0x7f)) << code;
    EXPECT_EQ(FloatToE4M3(value), code) << code;
  }
}

TEST(E4M3Test, SpecialValues) {
  EXPECT_EQ(FloatToE4M3(-0.0f), 0x80);
  EXPECT_EQ(FloatToE4M3(0.0f), 0x00);
  EXPECT_EQ(FloatToE4M3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(FloatToE4M3(-std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(FloatToE4M3(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(FloatToE4M3(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(FloatToE4M3(449.0f), 0x7e);
  EXPECT_EQ(FloatToE4M3(464.0f), 0x7e);
  EXPECT_EQ(FloatToE4M3(1e30f), 0x7e);
  EXPECT_EQ(FloatToE4M3(-1e30f), 0xfe);
  EXPECT_EQ(FloatToE4M3(1.0625f), 0x38);           // tie between 1.0 and 1.125: even
  EXPECT_EQ(FloatToE4M3(1.1875f), 0x3a);           // tie between 1.125 and 1.25: even
  EXPECT_EQ(FloatToE4M3(std::ldexp(1.0f, -10)), 0x00);   // tie between 0 and 2^-9
  EXPECT_EQ(FloatToE4M3(std::ldexp(3.0f, -10)), 0x02);   // tie between 1 and 2 units
  EXPECT_EQ(FloatToE4M3(std::ldexp(15.0f, -10)), 0x08);  // tie between 7 units and 2^-6
  EXPECT_EQ(FloatToE4M3(-std::ldexp(1.0f, -12)), 0x80);  // negative, rounds to -0
  EXPECT_EQ(FloatToE4M3(std::numeric_limits<float>::denorm_min()), 0x00);
}

// Every tie between neighbouring e4m3 values, and the floats just beside each.
std::vector<float> TiesAndNeighbours() {
  E4M3Oracle oracle;
  std::vector<float> out;
  for (int code = 0; code < 0x7e; ++code) {
    float mid = static_cast<float>((oracle.Value(code) + oracle.Value(code + 1)) / 2.0);
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1000.0f),
                    static_cast<float>(oracle.Value(code))}) {
      out.push_back(f);
      out.push_back(-f);
    }
  }
  return out;
}

TEST(E4M3Test, MatchesOracleOnTies) {
  E4M3Oracle oracle;
  for (float f : TiesAndNeighbours()) {
    ASSERT_EQ(FloatToE4M3(f), oracle.Encode(f)) << f;
  }
}

TEST(E4M3Test, MatchesOracleOnRandomFloats) {
  E4M3Oracle oracle;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> log2_magnitude(-16.0f, 10.0f);
  for (int i = 0; i < 2'000'000; ++i) {
    float any = BitsToFloat(static_cast<uint32_t>(rng()));  // every exponent, NaN and Inf too
    ASSERT_EQ(FloatToE4M3(any), oracle.Encode(any)) << any;
    float in_range = std::exp2(log2_magnitude(rng)) * ((rng() & 1) ? -1.0f : 1.0f);
    ASSERT_EQ(FloatToE4M3(in_range), oracle.Encode(in_range)) << in_range;
  }
}

TEST(E4M3Test, MatchesOracleOnStridedSweep) {
  // Every float from 0 to 512 whose bit pattern is a multiple of 101 (all mantissa residues).
  E4M3Oracle oracle;
  for (uint32_t bits = 0; bits <= 0x44000000u; bits += 101) {
    float f = BitsToFloat(bits);
    ASSERT_EQ(FloatToE4M3(f), oracle.Encode(f)) << f;
  }
}

using SimdEncoder = void (*)(const float*, uint8_t*, int64_t);

class SimdEncoderTest : public ::testing::TestWithParam<int> {};

TEST_P(SimdEncoderTest, MatchesScalar) {
  SimdEncoder encode = nullptr;
  if (GetParam() == 2) {
    if (!convert_internal::Avx2Supported()) GTEST_SKIP() << "no AVX2";
    encode = convert_internal::Avx2EncodeE4M3;
  } else {
    if (!convert_internal::Avx512Supported()) GTEST_SKIP() << "no AVX-512";
    encode = convert_internal::Avx512EncodeE4M3;
  }
  // All floats in [-448, 448] with bit patterns in steps of 5 (positive) and 101 (negative),
  // plus every tie and its neighbours, in batches.
  std::vector<float> in;
  std::vector<uint8_t> out;
  auto check = [&] {
    out.assign(in.size(), 0);
    encode(in.data(), out.data(), static_cast<int64_t>(in.size()));
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(out[i], FloatToE4M3(in[i])) << in[i];
    }
    in.clear();
  };
  for (float f : TiesAndNeighbours()) {
    if (std::fabs(f) <= 448.0f) in.push_back(f);
  }
  in.resize(in.size() / 8 * 8);
  check();
  for (uint32_t bits = 0; bits <= 0x43e00000u; bits += 5) {
    in.push_back(BitsToFloat(bits));
    if (bits % 101 == 0) in.push_back(BitsToFloat(bits | 0x80000000u));
    if (in.size() >= 8192) check();
    if (::testing::Test::HasFatalFailure()) return;
  }
  in.resize(in.size() / 8 * 8);
  check();
}

INSTANTIATE_TEST_SUITE_P(E4M3Test, SimdEncoderTest, ::testing::Values(2, 512),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return param.param == 2 ? std::string("Avx2") : std::string("Avx512");
                         });

// The AVX-512 table quantizer (convert_avx512.cc) against the scalar definition
// QuantizeE4M3(x, Fp8Scale(amax)), for every bf16 x with |x| <= amax (both signs), on a spread
// of amax values: every 61st finite positive bf16, powers of two and their neighbours, 448 * 2^k
// and its neighbours, the values around the 1e-12 scale floor, and the largest bf16.
// WS_EXHAUSTIVE_FP8=1 in the environment checks every finite positive bf16 amax instead (2^31
// pairs; about a minute per core), which was run once for the AVX-512 path.
TEST(E4M3Test, Avx512TablesMatchScalarForEveryBf16) {
  if (!convert_internal::Avx512Supported()) GTEST_SKIP() << "no AVX-512";
  std::vector<uint16_t> amaxes;
  const char* env = std::getenv("WS_EXHAUSTIVE_FP8");
  const bool exhaustive = env != nullptr && std::string(env) == "1";
  for (uint32_t a = 1; a <= 0x7f7f; a += exhaustive ? 1 : 61) {
    amaxes.push_back(static_cast<uint16_t>(a));
  }
  for (int e = -133; e <= 127; ++e) {
    for (float base : {1.0f, 448.0f, 448e-12f}) {
      uint16_t b = FloatToBF16(std::ldexp(base, e));
      if (b == 0 || b >= 0x7f80) continue;
      for (int d = -2; d <= 2; ++d) {
        int v = b + d;
        if (v > 0 && v < 0x7f80) amaxes.push_back(static_cast<uint16_t>(v));
      }
    }
  }
  amaxes.push_back(0x7f7f);
  amaxes.push_back(0x0000);
  std::vector<uint16_t> in;
  std::vector<uint8_t> out;
  for (uint16_t amax : amaxes) {
    float scale = convert_internal::Fp8Scale(BF16ToFloat(amax));
    in.clear();
    for (uint32_t x = 0; x <= amax; ++x) {
      in.push_back(static_cast<uint16_t>(x));
      in.push_back(static_cast<uint16_t>(x | 0x8000u));
    }
    out.assign(in.size(), 0xcd);
    convert_internal::Avx512QuantizeBF16(in.data(), out.data(), static_cast<int64_t>(in.size()),
                                         scale);
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(out[i], convert_internal::QuantizeE4M3(BF16ToFloat(in[i]), scale))
          << "x 0x" << std::hex << in[i] << " amax 0x" << amax;
    }
  }
}

}  // namespace
}  // namespace weightsync
