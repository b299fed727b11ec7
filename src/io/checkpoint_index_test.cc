#include "io/checkpoint_index.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

void ExpectError(std::string_view text, std::string_view mention) {
  Result<CheckpointIndex> index = ParseCheckpointIndex(text);
  ASSERT_FALSE(index.ok()) << text;
  EXPECT_EQ(index.status().code(), StatusCode::kDataLoss) << text;
  EXPECT_NE(index.status().message().find(mention), std::string::npos)
      << text << ": " << index.status().ToString();
}

TEST(CheckpointIndex, KeepsTheWeightMapSortedWithEachFileOnce) {
  auto index = ParseCheckpointIndex(
      R"({"metadata": {"total_size": 6, "note": "x", "nested": {"a": [1, "b", {}], "c": null}},
          "other": {"ignored": [1, 2, {"deep": true}], "ignored": 3},
          "weight_map": {"b": "s2.safetensors", "a": "s1.safetensors", "c": "s2.safetensors"}})");
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->files, (std::vector<std::string>{"s1.safetensors", "s2.safetensors"}));
  ASSERT_EQ(index->weight_map.size(), 3u);
  EXPECT_EQ(index->weight_map[0].tensor, "a");
  EXPECT_EQ(index->weight_map[0].file, 0u);
  EXPECT_EQ(index->weight_map[1].tensor, "b");
  EXPECT_EQ(index->weight_map[1].file, 1u);
  EXPECT_EQ(*index->FileOf("c"), "s2.safetensors");
  EXPECT_EQ(index->FileOf("d"), nullptr);
  EXPECT_EQ(index->metadata.at("total_size"), "6");
  EXPECT_EQ(index->metadata.at("note"), "x");
  EXPECT_EQ(index->metadata.at("nested"), R"({"a":[1,"b",{}],"c":null})");
}

TEST(CheckpointIndex, MetadataMayBeNullOrAbsent) {
  EXPECT_TRUE(ParseCheckpointIndex(R"({"metadata": null, "weight_map": {}})").ok());
  auto index = ParseCheckpointIndex(R"({"weight_map": {"a": "s.safetensors"}})");
  ASSERT_TRUE(index.ok());
  EXPECT_TRUE(index->metadata.empty());
}

TEST(CheckpointIndex, RefusesMalformedIndexes) {
  ExpectError("", "not valid JSON");
  ExpectError(R"({"weight_map": {"a": "s"})", "not valid JSON");
  ExpectError(R"([])", "not a JSON object");
  ExpectError(R"("text")", "not a JSON object");
  ExpectError(R"({})", "weight_map");
  ExpectError(R"({"weight_map": []})", "weight_map");
  ExpectError(R"({"weight_map": "s"})", "weight_map");
  ExpectError(R"({"metadata": [], "weight_map": {}})", "\"metadata\" is not an object");
  ExpectError(R"({"weight_map": {"a": 1}})", "tensor \"a\": file is not a string");
  ExpectError(R"({"weight_map": {"a": ["s"]}})", "tensor \"a\": file is not a string");
  ExpectError(R"({"weight_map": {"a": "s", "a": "t"}})", "\"a\" appears twice");
  ExpectError(R"({"weight_map": {}, "weight_map": {}})", "\"weight_map\" appears twice");
  ExpectError(R"({"metadata": {"k": 1, "k": 2}, "weight_map": {}})", "\"k\" appears twice");
  ExpectError(std::string(65, '[') + std::string(65, ']'), "not a JSON object");
  ExpectError(R"({"x": )" + std::string(100, '[') + std::string(100, ']') + "}",
              "nested deeper than 64");
  ExpectError(std::string("{\"weight_map\": {}}\0", 19), "NUL byte at offset 18");
  ExpectError(std::string("{\"weight_map\": {}}\0}", 20), "NUL byte");
}

}  // namespace
}  // namespace weightsync
