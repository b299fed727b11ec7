#include "model/model_spec.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace weightsync {
namespace {

TEST(ModelSpec, EveryBuiltinSpecLoads) {
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  std::vector<std::string> names = library.ModelNames();
  EXPECT_EQ(names, (std::vector<std::string>{"deepseek_v3", "glm_moe_dsa", "llama", "qwen3",
                                             "qwen3_moe"}));
  for (const auto& name : names) {
    Result<ModelSpec> spec = library.Load(name);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    for (const char* source : {"hf", "hf-fused", "torchtitan"}) {
      EXPECT_TRUE(spec->FindSourceFormat(source).ok()) << name << " " << source;
    }
    for (const char* target : {"vllm", "hf-fp8"}) {
      EXPECT_TRUE(spec->FindTargetFormat(target).ok()) << name << " " << target;
    }
    EXPECT_EQ(spec->hash.size(), 16u);
  }
}

TEST(ModelSpec, ExtendsMergesAndOverrides) {
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  ModelSpec glm = library.Load("glm_moe_dsa").value();
  ModelSpec deepseek = library.Load("deepseek_v3").value();
  EXPECT_EQ(glm.lineage, (std::vector<std::string>{"glm_moe_dsa", "deepseek_v3"}));
  EXPECT_EQ(glm.target_formats.at("vllm").tensors.size(),
            deepseek.target_formats.at("vllm").tensors.size() + 5);
  EXPECT_NE(glm.hash, deepseek.hash);

  // qwen3_moe makes llama's dense MLP rules optional by redefining them under the same name.
  ModelSpec moe = library.Load("qwen3_moe").value();
  for (const auto& rule : moe.target_formats.at("vllm").tensors) {
    if (rule.name.text() == "model.layers.{L}.mlp.gate_up_proj.weight") {
      EXPECT_TRUE(rule.optional);
    }
  }
}

TEST(ModelSpec, ErrorsNameTheProblem) {
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  EXPECT_EQ(library.Load("gpt5").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(library.AddDocument("{not json", "broken.json").ok());
  Status unknown_key = library.AddDocument(R"({"model": "m", "colour": 1})", "m.json");
  EXPECT_NE(unknown_key.message().find("unknown key 'colour'"), std::string::npos);

  ASSERT_TRUE(library.AddDocument(R"({"model": "a", "extends": "b"})", "a.json").ok());
  ASSERT_TRUE(library.AddDocument(R"({"model": "b", "extends": "a"})", "b.json").ok());
  EXPECT_NE(library.Load("a").status().message().find("cycle"), std::string::npos);

  ASSERT_TRUE(library
                  .AddDocument(R"({"model": "bad", "target_formats": {"vllm": {"tensors": [
      {"name": "x.{L}", "sources": ["y"], "dtype": "bfloat16"}]}}})",
                               "bad.json")
                  .ok());
  Status unbound = library.Load("bad").status();
  EXPECT_NE(unbound.message().find("variable {L} not in the first source"), std::string::npos)
      << unbound.ToString();
}

// transformers-fp8 is one process's whole model (tp=1): replicated, experts stacked as
// transformers 5 fuses them (FP8Experts.gate_up_proj = [gate; up] per expert, scale X_scale_inv).
TEST(ModelSpec, TransformersFp8IsTheWholeModelWithStackedExperts) {
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  for (const auto& name : library.ModelNames()) {
    ModelSpec spec = library.Load(name).value();
    ASSERT_TRUE(spec.target_formats.contains("transformers-fp8")) << name;
    for (const auto& rule : spec.target_formats.at("transformers-fp8").tensors) {
      TensorParallelism expected = TensorParallelism::kReplicated;
      if (!rule.stack.empty()) {
        expected = rule.sources.size() == 2 ? TensorParallelism::kExpertColumn
                                            : TensorParallelism::kExpertRow;
      }
      EXPECT_EQ(rule.parallel, expected) << name << " " << rule.name.text();
    }
  }
  ModelSpec glm = library.Load("glm_moe_dsa").value();
  int checked = 0;
  for (const auto& rule : glm.target_formats.at("transformers-fp8").tensors) {
    if (rule.name.text() == "model.layers.{L}.mlp.experts.gate_up_proj") {
      ++checked;
      EXPECT_EQ(rule.stack, "E");
      ASSERT_EQ(rule.sources.size(), 2u);
      EXPECT_EQ(rule.sources[0].text(), "model.layers.{L}.mlp.experts.{E}.gate_proj.weight");
      EXPECT_EQ(rule.quantization.scale_suffix, "_scale_inv");
    }
    if (rule.name.text() == "model.layers.{L}.self_attn.indexer.weights_proj.weight" ||
        rule.name.text() == "lm_head.weight") {
      ++checked;
      EXPECT_EQ(rule.quantization.destination_dtype, DType::kBF16) << rule.name.text();
    }
  }
  EXPECT_EQ(checked, 3);
}

TEST(ModelSpec, VllmTargetsSayHowEveryTensorIsSplit) {
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  for (const auto& name : library.ModelNames()) {
    ModelSpec spec = library.Load(name).value();
    for (const auto& rule : spec.target_formats.at("vllm").tensors) {
      EXPECT_NE(rule.parallel, TensorParallelism::kUnspecified) << name << " " << rule.name.text();
    }
    for (const auto& rule : spec.target_formats.at("hf-fp8").tensors) {
      EXPECT_EQ(rule.parallel, TensorParallelism::kUnspecified) << name << " " << rule.name.text();
    }
  }
  ModelSpec glm = library.Load("glm_moe_dsa").value();
  for (const auto& rule : glm.target_formats.at("vllm").tensors) {
    if (rule.name.text() == "model.layers.{L}.mlp.experts.w2_weight") {
      EXPECT_EQ(rule.parallel, TensorParallelism::kExpertRow);
    }
  }
  EXPECT_EQ(TensorParallelismFromName("qkv"), TensorParallelism::kQkv);
  EXPECT_EQ(TensorParallelismName(TensorParallelism::kVocab), "vocab");
  EXPECT_FALSE(TensorParallelismFromName("unspecified").has_value());

  ASSERT_TRUE(library
                  .AddDocument(R"({"model": "p", "target_formats": {"vllm": {"tensors": [
      {"name": "x", "sources": ["x"], "dtype": "bfloat16", "parallel": "diagonal"}]}}})",
                               "p.json")
                  .ok());
  Status bad = library.Load("p").status();
  EXPECT_NE(bad.message().find("unknown parallel '\"diagonal\"'"), std::string::npos)
      << bad.ToString();
}

TEST(ModelSpec, UserDirectoryAndFilePath) {
  auto dir = std::filesystem::temp_directory_path() / "weightsync_model_spec_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tiny.json") << R"({"model": "tiny", "extends": "llama",
      "description": "llama with a different norm name"})";
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  ASSERT_TRUE(library.AddDirectory(dir.string()).ok());
  ModelSpec tiny = library.Load("tiny").value();
  EXPECT_EQ(tiny.description, "llama with a different norm name");
  EXPECT_EQ(ModelSpecLibrary::Builtin().Load((dir / "tiny.json").string()).value().name, "tiny");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weightsync
