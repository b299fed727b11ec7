#include "model/checkpoint_side_files.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace weightsync {
namespace {

ResolvedConversion Destination(std::string name, Shape shape, bool fp8) {
  ResolvedConversion r;
  r.spec.destination = std::move(name);
  r.shape = std::move(shape);
  if (fp8) {
    r.spec.quantization.destination_dtype = DType::kF8E4M3;
    r.spec.quantization.scale_suffix = "_scale_inv";
  }
  return r;
}

TEST(CheckpointSideFiles, Fp8TargetsGetTheQuantizationConfig) {
  const std::vector<ResolvedConversion> converted = {
      Destination("model.embed_tokens.weight", {1000, 320}, false),
      Destination("model.layers.0.self_attn.q_a_proj.weight", {256, 320}, true),
      Destination("model.layers.0.input_layernorm.weight", {320}, false),
      Destination("model.layers.1.mlp.gate.weight", {4, 320}, false),
      Destination("model.layers.1.mlp.experts.w13_weight", {4, 256, 320}, true)};
  auto text = ConvertedConfig(
      R"({"model_type": "glm_moe_dsa", "hidden_size": 320, "quantization_config": {"x": 1}})",
      "config.json", converted);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const auto config = nlohmann::ordered_json::parse(*text);
  EXPECT_EQ(config.begin().key(), "model_type");  // the source's order is kept
  EXPECT_EQ(config["hidden_size"], 320);
  EXPECT_EQ(config["quantization_config"],
            nlohmann::ordered_json::parse(R"({"quant_method": "fp8", "fmt": "e4m3",
                "activation_scheme": "dynamic", "weight_block_size": [128, 128],
                "modules_to_not_convert": ["lm_head", "model.embed_tokens",
                                           "model.layers.1.mlp.gate"]})"));
}

TEST(CheckpointSideFiles, OtherTargetsDropTheSourcesQuantizationConfig) {
  const std::vector<ResolvedConversion> converted = {
      Destination("model.embed_tokens.weight", {1000, 320}, false)};
  auto text = ConvertedConfig(R"({"a": 1, "quantization_config": {"quant_method": "fp8"}})",
                              "config.json", converted);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(nlohmann::json::parse(*text), nlohmann::json::parse(R"({"a": 1})"));
}

TEST(CheckpointSideFiles, RefusesAConfigThatIsNotAnObject) {
  for (const char* text : {"", "[1]", "{\"a\": "}) {
    auto result = ConvertedConfig(text, "/ckpt/config.json", {});
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(result.status().message().find("/ckpt/config.json"), std::string::npos);
  }
}

TEST(CheckpointSideFiles, CopiesTokenizerAndModelCodeOnly) {
  for (const char* name : {"tokenizer.json", "generation_config.json", "tokenizer.model",
                           "modeling_deepseek.py", "configuration_deepseek.py"}) {
    EXPECT_TRUE(IsCopiedSideFile(name)) << name;
  }
  for (const char* name : {"config.json", "README.md", "model.safetensors", "modeling.txt",
                           "train.py", "model.safetensors.index.json"}) {
    EXPECT_FALSE(IsCopiedSideFile(name)) << name;
  }
}

}  // namespace
}  // namespace weightsync
