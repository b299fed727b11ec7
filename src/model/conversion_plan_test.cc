#include "model/conversion_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace weightsync {
namespace {

constexpr int kLayers = 3;   // layer 0 dense, 1 and 2 MoE
constexpr int kExperts = 4;
constexpr int64_t kHidden = 256, kInter = 128;

// A tiny GLM-5-shaped source in one of the three source formats.
std::vector<SourceTensorInfo> GlmSources(const std::string& format) {
  std::vector<SourceTensorInfo> out = {{"model.embed_tokens.weight", {1000, kHidden}},
                                       {"model.norm.weight", {kHidden}},
                                       {"lm_head.weight", {1000, kHidden}}};
  for (int l = 0; l < kLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* name : {"input_layernorm.weight", "post_attention_layernorm.weight",
                             "self_attn.q_a_layernorm.weight", "self_attn.kv_a_layernorm.weight",
                             "self_attn.indexer.k_norm.weight", "self_attn.indexer.k_norm.bias"}) {
      out.push_back({p + name, {kHidden}});
    }
    for (const char* name : {"self_attn.q_a_proj.weight", "self_attn.kv_a_proj_with_mqa.weight",
                             "self_attn.q_b_proj.weight", "self_attn.kv_b_proj.weight",
                             "self_attn.o_proj.weight", "self_attn.indexer.wq_b.weight",
                             "self_attn.indexer.wk.weight",
                             "self_attn.indexer.weights_proj.weight"}) {
      out.push_back({p + name, {kHidden, kHidden}});
    }
    if (l == 0) {
      for (const char* name : {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}) {
        out.push_back({p + name, {kInter, kHidden}});
      }
      continue;
    }
    bool titan = format == "torchtitan";
    out.push_back({p + (titan ? "mlp.router.gate.weight" : "mlp.gate.weight"), {kExperts, kHidden}});
    out.push_back({p + (titan ? "mlp.expert_bias" : "mlp.gate.e_score_correction_bias"), {kExperts}});
    for (const char* w : {"gate", "up", "down"}) {
      std::string hf = std::string("mlp.shared_experts.") + w + "_proj.weight";
      std::string tt = std::string("mlp.shared_expert.") +
                       (w == std::string("gate") ? "w1" : w == std::string("up") ? "w3" : "w2");
      out.push_back({p + (titan ? tt : hf), {kInter, kHidden}});
    }
    if (format == "hf") {
      for (int e = 0; e < kExperts; ++e) {
        for (const char* w : {"gate_proj", "up_proj", "down_proj"}) {
          out.push_back({p + "mlp.experts." + std::to_string(e) + "." + w + ".weight",
                         {kInter, kHidden}});
        }
      }
    } else if (format == "hf-fused") {
      out.push_back({p + "mlp.experts.gate_up_proj", {kExperts, 2 * kInter, kHidden}});
      out.push_back({p + "mlp.experts.down_proj", {kExperts, kHidden, kInter}});
    } else {
      out.push_back({p + "mlp.experts.w1", {kExperts, kInter, kHidden}});
      out.push_back({p + "mlp.experts.w3", {kExperts, kInter, kHidden}});
      out.push_back({p + "mlp.experts.w2", {kExperts, kHidden, kInter}});
    }
  }
  return out;
}

ModelSpec Glm() { return ModelSpecLibrary::Builtin().Load("glm_moe_dsa").value(); }

const ConversionSpec* FindSpec(const ConversionPlan& plan, const std::string& name) {
  for (const auto& spec : plan.specs) {
    if (spec.destination == name) return &spec;
  }
  return nullptr;
}

TEST(ConversionPlan, GlmToVllmFollowsTheSeedTable) {
  auto plan = PlanConversion(Glm(), GlmSources("hf"), {"hf", "vllm", {}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();

  const ConversionSpec* qkv = FindSpec(*plan, "model.layers.1.self_attn.fused_qkv_a_proj.weight");
  ASSERT_NE(qkv, nullptr);
  ASSERT_EQ(qkv->parts.size(), 1u);
  EXPECT_EQ(qkv->parts[0][0].tensor, "model.layers.1.self_attn.q_a_proj.weight");
  EXPECT_EQ(qkv->parts[0][1].tensor, "model.layers.1.self_attn.kv_a_proj_with_mqa.weight");
  EXPECT_EQ(qkv->quantization.destination_dtype, DType::kF8E4M3);
  EXPECT_EQ(qkv->scale_name(), "model.layers.1.self_attn.fused_qkv_a_proj.weight_scale_inv");

  const ConversionSpec* w13 = FindSpec(*plan, "model.layers.2.mlp.experts.w13_weight");
  ASSERT_NE(w13, nullptr);
  EXPECT_TRUE(w13->stacked);
  ASSERT_EQ(w13->parts.size(), static_cast<size_t>(kExperts));
  EXPECT_EQ(w13->parts[3][1].tensor, "model.layers.2.mlp.experts.3.up_proj.weight");
  EXPECT_EQ(w13->scale_name(), "model.layers.2.mlp.experts.w13_weight_scale_inv");

  EXPECT_EQ(FindSpec(*plan, "model.layers.1.mlp.gate.e_score_correction_bias")
                ->quantization.destination_dtype, DType::kF32);
  EXPECT_EQ(FindSpec(*plan, "model.layers.0.self_attn.indexer.k_norm.bias")
                ->quantization.destination_dtype, DType::kF32);
  EXPECT_EQ(FindSpec(*plan, "model.layers.0.self_attn.indexer.weights_proj.weight")
                ->quantization.destination_dtype, DType::kBF16);
  EXPECT_NE(FindSpec(*plan, "model.layers.0.mlp.gate_up_proj.weight"), nullptr);
  EXPECT_EQ(FindSpec(*plan, "model.layers.1.mlp.gate_up_proj.weight"), nullptr);
  EXPECT_NE(FindSpec(*plan, "lm_head.weight"), nullptr);

  // Ordered by layer: global tensors first, then layer 0, 1, 2.
  EXPECT_EQ(plan->specs.front().destination, "model.embed_tokens.weight");
  int64_t last_layer = -1;
  for (const auto& spec : plan->specs) {
    auto pos = spec.destination.find("model.layers.");
    if (pos == 0) {
      int64_t layer = std::stoll(spec.destination.substr(13));
      EXPECT_GE(layer, last_layer) << spec.destination;
      last_layer = layer;
    }
  }
  EXPECT_EQ(last_layer, kLayers - 1);
}

TEST(ConversionPlan, EverySourceFormatGivesTheSameDestinations) {
  auto names = [](const ConversionPlan& plan) {
    std::vector<std::string> out;
    for (const auto& s : plan.specs) out.push_back(s.destination);
    return out;
  };
  auto hf = PlanConversion(Glm(), GlmSources("hf"), {"hf", "vllm", {}}).value();
  for (const char* format : {"hf-fused", "torchtitan"}) {
    auto other = PlanConversion(Glm(), GlmSources(format), {format, "vllm", {}});
    ASSERT_TRUE(other.ok()) << format << ": " << other.status().ToString();
    EXPECT_EQ(names(hf), names(*other)) << format;
  }
  auto fused = PlanConversion(Glm(), GlmSources("hf-fused"), {"hf-fused", "vllm", {}}).value();
  const ConversionSpec* w13 = FindSpec(fused, "model.layers.1.mlp.experts.w13_weight");
  SourceRef up = w13->parts[2][1];
  EXPECT_EQ(up.tensor, "model.layers.1.mlp.experts.gate_up_proj");
  EXPECT_EQ(up.index, 2);
  EXPECT_EQ(up.chunk, 1);
  EXPECT_EQ(up.chunks, 2);
}

TEST(ConversionPlan, HfFp8KeepsExpertsSeparate) {
  auto plan = PlanConversion(Glm(), GlmSources("hf-fused"), {"hf-fused", "hf-fp8", {}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const ConversionSpec* up = FindSpec(*plan, "model.layers.2.mlp.experts.3.up_proj.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->scale_name(), "model.layers.2.mlp.experts.3.up_proj.weight_scale_inv");
  EXPECT_FALSE(up->stacked);
}

TEST(ConversionPlan, UnconsumedSourceIsAnErrorUnlessIgnored) {
  auto sources = GlmSources("hf");
  sources.push_back({"model.layers.1.mlp.mystery.weight", {4, 4}});
  sources.push_back({"model.layers.3.eh_proj.weight", {4, 4}});
  auto plan = PlanConversion(Glm(), sources, {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("model.layers.1.mlp.mystery.weight"), std::string::npos);
  auto ignored = PlanConversion(Glm(), sources, {"hf", "vllm", {R"(.*mystery.*)", R"(model\.layers\.3\..*)"}});
  ASSERT_TRUE(ignored.ok()) << ignored.status().ToString();
  EXPECT_EQ(ignored->ignored.size(), 2u);
  EXPECT_FALSE(PlanConversion(Glm(), sources, {"hf", "vllm", {"(unclosed"}}).ok());
}

// Names from a checkpoint or a caller reach messages escaped: a NUL or a byte that is not UTF-8
// must not cut or corrupt the line a user reads (issue 15).
TEST(ConversionPlan, NamesInErrorsAreEscaped) {
  using namespace std::string_literals;
  auto sources = GlmSources("hf");
  sources.push_back({"model.bad\0name\xff.weight"s, {4, 4}});
  auto plan = PlanConversion(Glm(), sources, {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  const std::string& message = plan.status().message();
  EXPECT_NE(message.find(R"(model.bad\x00name\xff.weight)"), std::string::npos) << message;
  EXPECT_EQ(message.find('\0'), std::string::npos);
  EXPECT_EQ(message.find('\xff'), std::string::npos);

  // One name given twice: "source tensors X and X both provide X", every X escaped.
  sources = GlmSources("hf");
  sources.push_back({"model.norm\x01\x1b[2J"s, {kHidden}});
  sources.push_back(sources.back());
  plan = PlanConversion(Glm(), sources, {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find(R"(model.norm\x01\x1b[2J and)"), std::string::npos)
      << plan.status().message();
  EXPECT_EQ(plan.status().message().find_first_of("\x01\x1b"), std::string::npos);
}

TEST(ConversionPlan, MissingSourcesAreNamed) {
  auto without = [](std::vector<SourceTensorInfo> v, const std::string& name) {
    v.erase(std::remove_if(v.begin(), v.end(), [&](auto& s) { return s.name == name; }), v.end());
    return v;
  };
  // A fused destination whose second source is missing.
  auto plan = PlanConversion(
      Glm(), without(GlmSources("hf"), "model.layers.1.self_attn.kv_a_proj_with_mqa.weight"),
      {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("needs source model.layers.1.self_attn.kv_a_proj_with_mqa"),
            std::string::npos) << plan.status().ToString();

  // A required per-layer tensor missing in one layer.
  plan = PlanConversion(Glm(), without(GlmSources("hf"), "model.layers.2.input_layernorm.weight"),
                        {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("input_layernorm.weight is missing for layers 2"),
            std::string::npos) << plan.status().ToString();

  // A gap in an expert stack.
  auto gap = without(without(without(GlmSources("hf"), "model.layers.1.mlp.experts.2.gate_proj.weight"),
                             "model.layers.1.mlp.experts.2.up_proj.weight"),
                     "model.layers.1.mlp.experts.2.down_proj.weight");
  plan = PlanConversion(Glm(), gap, {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("expert 2 is missing"), std::string::npos)
      << plan.status().ToString();

  // Converting part of a model skips the required-tensor checks, not the fused-partner ones.
  ConversionPlanOptions partial{"hf", "vllm", {}, /*allow_partial=*/true};
  EXPECT_TRUE(PlanConversion(Glm(), without(GlmSources("hf"), "model.layers.2.input_layernorm.weight"),
                             partial).ok());
  EXPECT_FALSE(PlanConversion(
      Glm(), without(GlmSources("hf"), "model.layers.1.self_attn.kv_a_proj_with_mqa.weight"),
      partial).ok());

  // A required global tensor.
  plan = PlanConversion(Glm(), without(GlmSources("hf"), "model.norm.weight"), {"hf", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("model.norm.weight is missing"), std::string::npos);

  // Tied embeddings: lm_head is optional.
  EXPECT_TRUE(PlanConversion(Glm(), without(GlmSources("hf"), "lm_head.weight"), {"hf", "vllm", {}}).ok());
}

TEST(ConversionPlan, FormatErrors) {
  EXPECT_EQ(PlanConversion(Glm(), GlmSources("hf"), {"megatron", "vllm", {}}).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(PlanConversion(Glm(), GlmSources("hf"), {"hf", "sglang", {}}).status().code(),
            StatusCode::kNotFound);
  // hf-fused expects 3D expert stacks.
  auto sources = GlmSources("hf-fused");
  for (auto& s : sources) {
    if (s.name == "model.layers.1.mlp.experts.down_proj") s.shape = {kHidden, kInter};
  }
  auto plan = PlanConversion(Glm(), sources, {"hf-fused", "vllm", {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("3D expert stack"), std::string::npos);
}

}  // namespace
}  // namespace weightsync
