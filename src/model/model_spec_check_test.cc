// Spec files with fields of the wrong JSON type: InvalidArgument naming the file and the field,
// never an exception (issue 15: "description": 5, "extends": 5, "canonical": 5, "cat_dim": "0",
// "optional": "yes" aborted the CLI with nlohmann::type_error).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/model_spec.h"

namespace weightsync {
namespace {

using nlohmann::json;

// A valid spec extending llama: one source rule and one target tensor, each case breaks a field.
json GoodSpec() {
  return json::parse(R"({
    "model": "mine", "extends": "llama", "description": "a test spec",
    "source_formats": {"mine-src": {"description": "d", "rules": [
      {"canonical": "model.layers.{L}.mlp.experts.{E}.up_proj.weight",
       "source": "model.layers.{L}.mlp.experts.w3", "select": "E"}]}},
    "target_formats": {"vllm": {"description": "d", "tensors": [
      {"name": "model.layers.{L}.extra.weight", "sources": ["model.layers.{L}.extra.weight"],
       "dtype": "bfloat16", "cat_dim": 0, "optional": true, "parallel": "replicated"}]}}})");
}

// Loads `spec` from a file the way `--model FILE.json` does, in a folder of this test's own
// (ctest runs the tests of this program in parallel).
Status LoadFile(const json& spec, const std::string& file_name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   StrCat("weightsync_spec_check_", ::getpid(), "_",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  std::ofstream(dir / file_name) << spec.dump();
  Status status = ModelSpecLibrary::Builtin().Load((dir / file_name).string()).status();
  std::filesystem::remove_all(dir);
  return status;
}

void ExpectRefused(const Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << field << ": " << status.ToString();
  EXPECT_NE(status.message().find("bad_spec.json"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(field), std::string::npos) << status.ToString();
}

TEST(ModelSpecCheck, TheGoodSpecLoads) {
  Status status = LoadFile(GoodSpec(), "good_spec.json");
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(ModelSpecCheck, FieldsOfTheWrongTypeNameFileAndField) {
  using Pointer = json::json_pointer;
  const Pointer formats("/source_formats/mine-src");
  const Pointer rule = formats / "rules" / 0;
  const Pointer tensor("/target_formats/vllm/tensors/0");
  struct Case {
    Pointer field;
    json value;
    const char* named;  // what the message must name besides the file
  };
  const Case cases[] = {
      {Pointer("/description"), 5, "'description'"},
      {Pointer("/extends"), 5, "'extends'"},
      {Pointer("/model"), 5, "'model'"},
      {Pointer("/source_formats"), json::array(), "'source_formats'"},
      {formats, "rules", "source format mine-src"},
      {formats / "description", 5, "'description'"},
      {formats / "rules", json::object(), "'rules'"},
      {rule, 5, "rule 0"},
      {rule / "canonical", 5, "'canonical'"},
      {rule / "source", nullptr, "'source'"},
      {rule / "select", 1, "'select'"},
      {Pointer("/target_formats/vllm/tensors"), "x", "'tensors'"},
      {tensor / "name", 5, "'name'"},
      {tensor / "sources" / 0, 5, "'sources[0]'"},
      {tensor / "cat_dim", "0", "'cat_dim'"},
      {tensor / "cat_dim", 2, "cat_dim = 2"},
      {tensor / "optional", "yes", "'optional'"},
      {tensor / "dtype", 16, "'dtype'"},
      {tensor / "stack", false, "'stack'"},
      {tensor / "scale_suffix", 1, "'scale_suffix'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field.to_string());
    json spec = GoodSpec();
    spec[c.field] = c.value;
    ExpectRefused(LoadFile(spec, "bad_spec.json"), c.named);
  }
}

// A spec in a user directory is read when added and checked when a model extending it loads:
// the error names its file, not the child's.
TEST(ModelSpecCheck, ErrorsInAParentNameTheParentFile) {
  json parent = GoodSpec();
  parent["model"] = "parent";
  parent["target_formats"]["vllm"]["tensors"][0]["optional"] = "yes";
  ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  ASSERT_TRUE(library.AddDocument(parent.dump(), "parent_spec.json").ok());
  ASSERT_TRUE(library.AddDocument(R"({"model": "child", "extends": "parent"})", "child.json").ok());
  Status status = library.Load("child").status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("parent_spec.json"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("optional"), std::string::npos) << status.ToString();
}

// Control characters in a pattern or a key are escaped in the message.
TEST(ModelSpecCheck, NamesInErrorsAreEscaped) {
  json spec = GoodSpec();
  spec["target_formats"]["vllm"]["tensors"][0]["name"] = std::string("x\0{L", 4);
  Status status = LoadFile(spec, "bad_spec.json");
  EXPECT_NE(status.message().find(R"(x\x00{L)"), std::string::npos) << status.ToString();
  EXPECT_EQ(status.message().find('\0'), std::string::npos);
  spec = GoodSpec();
  spec["colour\x1b"] = 1;
  status = LoadFile(spec, "bad_spec.json");
  EXPECT_NE(status.message().find(R"(unknown key 'colour\x1b')"), std::string::npos)
      << status.ToString();
}

}  // namespace
}  // namespace weightsync
