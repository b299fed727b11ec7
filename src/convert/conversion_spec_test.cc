#include "convert/conversion_spec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "core/float_bits.h"

namespace weightsync {
namespace {

// Named bf16 tensors held in memory.
class Sources {
 public:
  void Add(const std::string& name, Shape shape, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    auto& data = data_[name];
    data.resize(static_cast<size_t>(NumElements(shape)));
    for (auto& v : data) v = FloatToBF16(dist(rng));
    shapes_[name] = std::move(shape);
  }
  std::vector<uint16_t>& data(const std::string& name) { return data_.at(name); }
  SourceLookup Lookup() {
    return [this](const std::string& name) -> Result<TensorView> {
      auto it = data_.find(name);
      if (it == data_.end()) return NotFound("no tensor ", name);
      return TensorView::Contiguous(it->second.data(), shapes_.at(name), DType::kBF16);
    };
  }

 private:
  std::map<std::string, std::vector<uint16_t>> data_;
  std::map<std::string, Shape> shapes_;
};

struct Output {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};

Result<Output> Convert(const ConversionSpec& spec, Sources& sources, int threads = 2) {
  WS_ASSIGN_OR_RETURN(ResolvedConversion resolved, ResolveConversion(spec, sources.Lookup()));
  Output out;
  out.bytes.resize(static_cast<size_t>(resolved.destination_bytes()));
  out.scales.resize(static_cast<size_t>(resolved.scale_bytes() / 4));
  TensorView dst = TensorView::Contiguous(out.bytes.data(), resolved.shape,
                                          spec.quantization.destination_dtype);
  TensorView scale = TensorView::Contiguous(out.scales.data(), resolved.scale_shape, DType::kF32);
  WS_RETURN_IF_ERROR(ExecuteConversion(resolved, dst, scale, threads));
  return out;
}

// The reference: quantize one already-concatenated bf16 matrix with ConvertReference.
Output ReferenceFp8(std::vector<uint16_t> matrix, int64_t rows, int64_t cols) {
  Output out;
  out.bytes.resize(static_cast<size_t>(rows * cols));
  out.scales.resize(static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128)));
  ConvertJob job;
  job.src = matrix.data();
  job.src_dtype = DType::kBF16;
  job.rows = rows;
  job.cols = cols;
  job.src_row_stride = cols;
  job.dst = out.bytes.data();
  job.dst_dtype = DType::kF8E4M3;
  job.dst_row_stride = cols;
  job.scales = out.scales.data();
  job.scale_row_stride = (cols + 127) / 128;
  EXPECT_TRUE(ConvertReference(job).ok());
  return out;
}

ConversionSpec Fp8Spec(std::string destination, std::vector<std::vector<SourceRef>> parts) {
  ConversionSpec spec;
  spec.destination = std::move(destination);
  spec.parts = std::move(parts);
  spec.stacked = spec.parts.size() > 1;
  spec.quantization = {DType::kF8E4M3, "_scale_inv"};
  return spec;
}

TEST(ConversionSpec, FusedRowsEqualQuantizingTheConcatenation) {
  Sources sources;
  sources.Add("q_a", {256, 300}, 1);
  sources.Add("kv_a", {72, 300}, 2);  // last source: need not be 128-aligned
  auto out = Convert(Fp8Spec("fused", {{{"q_a"}, {"kv_a"}}}), sources);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::vector<uint16_t> cat = sources.data("q_a");
  cat.insert(cat.end(), sources.data("kv_a").begin(), sources.data("kv_a").end());
  Output ref = ReferenceFp8(cat, 328, 300);
  EXPECT_EQ(out->bytes, ref.bytes);
  EXPECT_EQ(out->scales, ref.scales);
}

TEST(ConversionSpec, StackedExpertsFromChunksOfA3DStack) {
  Sources sources;
  sources.Add("gate_up", {3, 2 * 128, 200}, 3);  // [E, 2I, H]
  std::vector<std::vector<SourceRef>> parts;
  for (int64_t e = 0; e < 3; ++e) parts.push_back({{"gate_up", e, 0, 2}, {"gate_up", e, 1, 2}});
  ConversionSpec spec = Fp8Spec("w13", parts);
  auto resolved = ResolveConversion(spec, sources.Lookup());
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->shape, (Shape{3, 256, 200}));
  EXPECT_EQ(resolved->scale_shape, (Shape{3, 2, 2}));
  auto out = Convert(spec, sources);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // [gate; up] of expert e is exactly expert e of the stack, so each expert equals a 2D reference.
  for (int64_t e = 0; e < 3; ++e) {
    auto& all = sources.data("gate_up");
    std::vector<uint16_t> expert(all.begin() + e * 256 * 200, all.begin() + (e + 1) * 256 * 200);
    Output ref = ReferenceFp8(expert, 256, 200);
    EXPECT_TRUE(std::equal(ref.bytes.begin(), ref.bytes.end(), out->bytes.begin() + e * 256 * 200));
    EXPECT_TRUE(std::equal(ref.scales.begin(), ref.scales.end(), out->scales.begin() + e * 4));
  }
}

TEST(ConversionSpec, CastsAndOneDimensionalTensors) {
  Sources sources;
  sources.Add("bias", {64}, 4);
  ConversionSpec spec;
  spec.destination = "bias32";
  spec.parts = {{{"bias"}}};
  spec.quantization = {DType::kF32, ""};
  auto out = Convert(spec, sources);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const float* values = reinterpret_cast<const float*>(out->bytes.data());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(values[i], BF16ToFloat(sources.data("bias")[i]));
  EXPECT_EQ(ResolveConversion(spec, sources.Lookup())->shape, (Shape{64}));
}

TEST(ConversionSpec, RejectsBadSpecsNamingTheTensors) {
  Sources sources;
  sources.Add("a", {100, 256}, 5);
  sources.Add("b", {128, 256}, 6);
  sources.Add("c", {128, 128}, 7);
  auto err = [&](const ConversionSpec& spec) {
    return ResolveConversion(spec, sources.Lookup()).status().ToString();
  };
  EXPECT_NE(err(Fp8Spec("ab", {{{"a"}, {"b"}}})).find("source b starts at row 100"), std::string::npos);
  EXPECT_NE(err(Fp8Spec("bc", {{{"b"}, {"c"}}})).find("source c has [128, 128]"), std::string::npos);
  EXPECT_NE(err(Fp8Spec("bx", {{{"b"}, {"x"}}})).find("no tensor x"), std::string::npos);
  EXPECT_NE(err(Fp8Spec("st", {{{"a"}}, {{"b"}}})).find("expert 1 is [128, 256]"), std::string::npos);
  ConversionSpec bad_dtype = Fp8Spec("a8", {{{"a"}}});
  bad_dtype.quantization.scale_suffix = "";
  EXPECT_NE(err(bad_dtype).find("needs a scale suffix"), std::string::npos);
  EXPECT_NE(err(Fp8Spec("sel", {{{"a", 0}}})).find("3D stack"), std::string::npos);
  EXPECT_NE(err(Fp8Spec("chunk", {{{"a", -1, 0, 3}}})).find("3 equal row chunks"), std::string::npos);
}

TEST(ConversionSpec, NaNIsRefusedNamingSourceAndCoordinate) {
  Sources sources;
  sources.Add("w", {3, 256, 128}, 8);
  sources.data("w")[2 * 256 * 128 + 130 * 128 + 5] = 0x7fc0;  // NaN at expert 2, row 130, col 5
  std::vector<std::vector<SourceRef>> parts;
  for (int64_t e = 0; e < 3; ++e) parts.push_back({{"w", e, 0, 2}, {"w", e, 1, 2}});
  auto out = Convert(Fp8Spec("w13", parts), sources);
  ASSERT_FALSE(out.ok());
  const std::string& message = out.status().message();
  EXPECT_NE(message.find("w13"), std::string::npos) << message;
  EXPECT_NE(message.find("tensor w: NaN at [130, 5] (expert 2)"), std::string::npos) << message;
}

}  // namespace
}  // namespace weightsync
