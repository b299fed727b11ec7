#include "plan/model_dims.h"

#include <gtest/gtest.h>

#include <map>

namespace weightsync {
namespace {

int64_t Parameters(const std::vector<SourceTensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += NumElements(t.shape);
  return n;
}

std::map<std::string, SourceTensor> ByName(const std::vector<SourceTensor>& tensors) {
  std::map<std::string, SourceTensor> out;
  for (const auto& t : tensors) out[t.name] = t;
  return out;
}

TEST(ModelDims, PresetsHaveTheirPublishedSizes) {
  for (const auto& name : PresetNames()) {
    auto dims = PresetDims(name);
    ASSERT_TRUE(dims.ok()) << dims.status().ToString();
    auto spec = ModelSpecForType(dims->model_type);
    EXPECT_TRUE(spec.ok()) << name;
  }
  // Main-model totals (the MTP layer is not served by vLLM's main model and is not planned).
  auto glm = CanonicalTensors(*PresetDims("glm5"));
  ASSERT_TRUE(glm.ok());
  EXPECT_NEAR(static_cast<double>(Parameters(*glm)) / 1e9, 744, 20);
  auto dsv3 = CanonicalTensors(*PresetDims("deepseek_v3"));
  ASSERT_TRUE(dsv3.ok());
  EXPECT_NEAR(static_cast<double>(Parameters(*dsv3)) / 1e9, 671, 2);
  auto kimi = CanonicalTensors(*PresetDims("kimi_k2"));
  ASSERT_TRUE(kimi.ok());
  EXPECT_NEAR(static_cast<double>(Parameters(*kimi)) / 1e9, 1030, 30);
  auto qwen = CanonicalTensors(*PresetDims("qwen3_235b"));
  ASSERT_TRUE(qwen.ok());
  EXPECT_NEAR(static_cast<double>(Parameters(*qwen)) / 1e9, 235, 5);

  auto glm_names = ByName(*glm);
  EXPECT_EQ(glm_names["model.layers.3.mlp.experts.255.gate_proj.weight"].shape,
            (Shape{2048, 6144}));
  EXPECT_EQ(glm_names["model.layers.0.self_attn.kv_b_proj.weight"].shape,
            (Shape{64 * (192 + 256), 512}));
  EXPECT_EQ(glm_names["model.layers.3.mlp.gate.e_score_correction_bias"].dtype, DType::kF32);
  EXPECT_EQ(glm_names.count("model.layers.2.mlp.gate.weight"), 0u);  // dense layer
  EXPECT_FALSE(PresetDims("glm6").ok());
}

TEST(ModelDims, ReadsHuggingFaceConfig) {
  const std::string config = R"({
    "model_type": "deepseek_v3", "hidden_size": 7168, "vocab_size": 129280,
    "num_hidden_layers": 61, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "first_k_dense_replace": 3, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "tie_word_embeddings": false})";
  auto dims = DimsFromHfConfig(config, "config.json");
  ASSERT_TRUE(dims.ok()) << dims.status().ToString();
  auto preset = PresetDims("deepseek_v3");
  EXPECT_EQ(Parameters(*CanonicalTensors(*dims)), Parameters(*CanonicalTensors(*preset)));

  auto bad = DimsFromHfConfig(R"({"model_type": "llama"})", "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cfg.json"), std::string::npos);
  EXPECT_FALSE(DimsFromHfConfig("not json", "x").ok());
}

TEST(ModelDims, SpellsTensorsInASourceFormat) {
  ModelDims d = *PresetDims("deepseek_v3");
  d.layers = 4;
  d.experts = 8;
  auto canonical = CanonicalTensors(d);
  ASSERT_TRUE(canonical.ok());
  auto library = ModelSpecLibrary::Builtin();
  auto spec = library.Load("deepseek_v3");
  ASSERT_TRUE(spec.ok());

  auto titan = TensorsInFormat(*canonical, **spec->FindSourceFormat("torchtitan"));
  ASSERT_TRUE(titan.ok()) << titan.status().ToString();
  auto t = ByName(*titan);
  EXPECT_EQ(t["model.layers.3.mlp.experts.w1"].shape, (Shape{8, 2048, 7168}));
  EXPECT_EQ(t["model.layers.3.mlp.experts.w2"].shape, (Shape{8, 7168, 2048}));
  EXPECT_EQ(t["model.layers.3.mlp.expert_bias"].dtype, DType::kF32);
  EXPECT_EQ(t.count("model.layers.3.mlp.experts.0.gate_proj.weight"), 0u);

  auto fused = TensorsInFormat(*canonical, **spec->FindSourceFormat("hf-fused"));
  ASSERT_TRUE(fused.ok()) << fused.status().ToString();
  EXPECT_EQ(ByName(*fused)["model.layers.3.mlp.experts.gate_up_proj"].shape,
            (Shape{8, 4096, 7168}));
  // Renaming only: the same number of parameters either way.
  EXPECT_EQ(Parameters(*fused), Parameters(*canonical));
  EXPECT_EQ(Parameters(*titan), Parameters(*canonical));
}

}  // namespace
}  // namespace weightsync
