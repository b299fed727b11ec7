// config.json fields of the wrong JSON type and dimensions out of range: InvalidArgument errors
// naming the file and the field, before any work (issue 15). Inputs from the hardening report.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plan/model_dims.h"

namespace weightsync {
namespace {

using nlohmann::json;

// DeepSeek-V3's config.json, the base every case below changes one field of.
json DeepSeekConfig() {
  return json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 7168, "vocab_size": 129280,
    "num_hidden_layers": 61, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "first_k_dense_replace": 3, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "tie_word_embeddings": false})");
}

Result<ModelDims> WithField(const std::string& key, const json& value) {
  json config = DeepSeekConfig();
  config[key] = value;
  return DimsFromHfConfig(config.dump(), "/ckpt/config.json");
}

void ExpectRefused(const Result<ModelDims>& dims, const std::string& field) {
  ASSERT_FALSE(dims.ok()) << field;
  EXPECT_EQ(dims.status().code(), StatusCode::kInvalidArgument) << dims.status().ToString();
  EXPECT_NE(dims.status().message().find("config /ckpt/config.json: "), std::string::npos)
      << dims.status().ToString();
  EXPECT_NE(dims.status().message().find(field), std::string::npos) << dims.status().ToString();
}

TEST(ModelDimsCheck, FieldsOfTheWrongTypeNameFileAndField) {
  const std::pair<const char*, json> cases[] = {
      {"model_type", 5},
      {"model_type", nullptr},
      {"tie_word_embeddings", "yes"},
      {"hidden_size", "7168"},
      {"hidden_size", 7168.5},
      {"num_hidden_layers", json::array({61})},
      {"n_routed_experts", true},
      {"decoder_sparse_step", "1"},
      {"mlp_only_layers", 3},
      {"text_config", "qwen"},
  };
  for (const auto& [key, value] : cases) ExpectRefused(WithField(key, value), key);
  json nested = {{"text_config", DeepSeekConfig()}};
  nested["text_config"]["v_head_dim"] = "128";
  ExpectRefused(DimsFromHfConfig(nested.dump(), "/ckpt/config.json"), "v_head_dim");
}

TEST(ModelDimsCheck, DimensionsOutOfRangeNameTheField) {
  const std::pair<const char*, json> cases[] = {
      {"hidden_size", int64_t{1} << 40},       // ran > 60 s at 100% CPU
      {"vocab_size", int64_t{1} << 62},        // std::bad_alloc
      {"num_hidden_layers", 1000000000},       // std::bad_alloc
      {"n_routed_experts", -1},                // was accepted
      {"v_head_dim", -1},                      // surfaced as INTERNAL
      {"qk_nope_head_dim", int64_t{1} << 61},  // heads x dims overflowed int64
      {"num_attention_heads", int64_t{1} << 40},
      {"hidden_size", 0},
      {"moe_intermediate_size", 0},                       // routed experts need it
      {"kv_lora_rank", uint64_t{18446744073709551615u}},  // past int64: would wrap to -1
  };
  for (const auto& [key, value] : cases) ExpectRefused(WithField(key, value), key);
}

TEST(ModelDimsCheck, GqaNeedsHeadsThatFit) {
  json config = {{"model_type", "llama"},      {"hidden_size", 4096},
                 {"vocab_size", 128256},       {"num_hidden_layers", 32},
                 {"intermediate_size", 14336}, {"num_attention_heads", 32},
                 {"num_key_value_heads", 8}};
  ASSERT_TRUE(DimsFromHfConfig(config.dump(), "/ckpt/config.json").ok());
  config["num_key_value_heads"] = 64;
  ExpectRefused(DimsFromHfConfig(config.dump(), "/ckpt/config.json"), "num_key_value_heads");
  config["num_key_value_heads"] = 8;
  config["intermediate_size"] = -14336;
  ExpectRefused(DimsFromHfConfig(config.dump(), "/ckpt/config.json"), "intermediate_size");
}

TEST(ModelDimsCheck, WholeModelLimits) {
  // Every field in range, but 792k tensors of 2^34 parameters each: far past the limit.
  json config = DeepSeekConfig();
  config["num_hidden_layers"] = 256;
  config["n_routed_experts"] = 1024;
  config["moe_intermediate_size"] = 1 << 18;
  config["hidden_size"] = 1 << 16;
  auto dims = DimsFromHfConfig(config.dump(), "/ckpt/config.json");
  ExpectRefused(dims, "parameters");
  // Too many tensors is refused before any is listed.
  config = DeepSeekConfig();
  config["num_hidden_layers"] = 1024;
  config["n_routed_experts"] = 4096;
  ExpectRefused(DimsFromHfConfig(config.dump(), "/ckpt/config.json"), "tensors");
}

int64_t ListedParameters(const ModelDims& dims) {
  const std::vector<SourceTensor> tensors = CanonicalTensors(dims).value();
  int64_t parameters = 0;
  for (const SourceTensor& t : tensors) parameters += NumElements(t.shape);
  return parameters;
}

TEST(ModelDimsCheck, PresetsAndRealConfigsStayAccepted) {
  for (const std::string& name : PresetNames()) {
    ModelDims dims = *PresetDims(name);
    EXPECT_TRUE(CheckDims(dims).ok()) << name;
    // The closed form the limit uses counts what CanonicalTensors lists (tied, untied).
    EXPECT_EQ(ParameterCount(dims), ListedParameters(dims)) << name;
    dims.tie_embeddings = !dims.tie_embeddings;
    dims.shared_experts = 0;
    EXPECT_EQ(ParameterCount(dims), ListedParameters(dims)) << name;
  }
  // Hugging Face writes None as null: an unset optional dimension, as in DeepSeek-V2's configs.
  json config = DeepSeekConfig();
  config["index_n_heads"] = nullptr;
  config["num_key_value_heads"] = nullptr;
  EXPECT_TRUE(DimsFromHfConfig(config.dump(), "c.json").ok());
  // Multimodal configs nest the language model.
  EXPECT_TRUE(DimsFromHfConfig(json({{"text_config", DeepSeekConfig()}}).dump(), "c.json").ok());
  // The demo's --layers goes through CanonicalTensors, which checks too.
  ModelDims dims = *PresetDims("glm5_tiny");
  dims.layers = 100000;
  EXPECT_EQ(CanonicalTensors(dims).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weightsync
