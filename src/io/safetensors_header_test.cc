#include "io/safetensors_header.h"

#include <gtest/gtest.h>

#include <string>

#include "io/io_test_util.h"

namespace weightsync {
namespace {

using testing::MakeSafetensorsBytes;

Result<SafetensorsHeader> Parse(std::string_view json, std::string_view data,
                                uint64_t max_header_size = kDefaultMaxSafetensorsHeaderSize) {
  std::vector<uint8_t> bytes = MakeSafetensorsBytes(json, data);
  return ParseSafetensorsHeader(bytes, bytes.size(), max_header_size);
}

// Expects a DataLoss error whose message contains `needle`.
void ExpectDataLoss(const Result<SafetensorsHeader>& result, std::string_view needle) {
  ASSERT_FALSE(result.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(result.status().code(), StatusCode::kDataLoss) << result.status().ToString();
  EXPECT_NE(result.status().message().find(needle), std::string::npos)
      << result.status().ToString() << "\n  does not contain: " << needle;
}

TEST(SafetensorsHeader, ParsesTensorsMetadataAndOffsets) {
  auto header = Parse(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[4,16]},)"
      R"("a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"F8_E4M3","shape":[0,5],"data_offsets":[16,16]}}  )",
      std::string(16, 'x'));
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_EQ(header->data_size, 16u);
  EXPECT_EQ(header->metadata.at("format"), "pt");
  ASSERT_EQ(header->tensors.size(), 3u);
  // Sorted by offset, not header order.
  EXPECT_EQ(header->tensors[0].name, "a");
  EXPECT_EQ(header->tensors[0].shape, Shape{});
  EXPECT_EQ(header->tensors[1].name, "b");
  EXPECT_EQ(header->tensors[1].dtype, DType::kBF16);
  EXPECT_EQ(header->tensors[1].shape, (Shape{2, 3}));
  EXPECT_EQ(header->tensors[1].begin, 4u);
  EXPECT_EQ(header->tensors[2].name, "e");
  EXPECT_EQ(header->tensors[2].nbytes(), 0u);
}

TEST(SafetensorsHeader, AcceptsEmptyHeaderAndNullMetadata) {
  EXPECT_TRUE(Parse("{}", "").ok());
  EXPECT_TRUE(Parse(R"({"__metadata__":null})", "").ok());
  EXPECT_TRUE(Parse(R"( {"__metadata__":{}} )", "").ok());
}

TEST(SafetensorsHeader, RefusesBadLengthPrefix) {
  std::vector<uint8_t> short_file = {1, 2, 3};
  auto result = ParseSafetensorsHeader(short_file, short_file.size());
  ExpectDataLoss(result, "too short");

  std::vector<uint8_t> past_end = MakeSafetensorsBytes("{}", "");
  past_end[0] = 200;
  ExpectDataLoss(ParseSafetensorsHeader(past_end, past_end.size()), "runs past the end");

  std::vector<uint8_t> huge = MakeSafetensorsBytes("{}", "");
  huge[7] = 0xff;
  ExpectDataLoss(ParseSafetensorsHeader(huge, huge.size()), "exceeds the limit");

  ExpectDataLoss(Parse("{}    ", "", /*max_header_size=*/4), "exceeds the limit");
}

TEST(SafetensorsHeader, RefusesMalformedJson) {
  ExpectDataLoss(Parse("{", ""), "not valid JSON");
  ExpectDataLoss(Parse("{}x", ""), "not valid JSON");
  ExpectDataLoss(Parse(std::string("{}\0", 3), ""), "not valid JSON");
  ExpectDataLoss(Parse("[]", ""), "expected a JSON object");
  ExpectDataLoss(Parse(R"({"\xff":1})", ""), "not valid JSON");  // invalid UTF-8
}

TEST(SafetensorsHeader, RefusesSchemaViolations) {
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
                 "tensor \"a\": unknown dtype \"F33\"");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[1]}})", "xxxx"), "needs \"dtype\"");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", "xxxx"),
                 "unknown field \"x\"");
  ExpectDataLoss(
      Parse(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
      "appears twice");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx"),
                 "negative dimension");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "xxxx"),
                 "tensor \"a\"");
  ExpectDataLoss(
      Parse(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", "xxxx"),
      "more than 8 dimensions");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "xxxx"),
                 "exactly 2 entries");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "xxxx"),
                 "more than 2 entries");
  ExpectDataLoss(Parse(R"({"__metadata__":{"k":1}})", ""), "__metadata__");
  ExpectDataLoss(Parse(R"({"__metadata__":[]})", ""), "__metadata__");
  ExpectDataLoss(Parse(R"({"__metadata__":{"k":"v","k":"w"}})", ""), "appears twice");
  ExpectDataLoss(Parse(R"({"a":[]})", ""), "tensor \"a\"");
}

TEST(SafetensorsHeader, RefusesDuplicateNames) {
  ExpectDataLoss(Parse(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                       "xx"),
                 "the name \"a\" appears twice");
}

TEST(SafetensorsHeader, RefusesShapeOffsetMismatch) {
  ExpectDataLoss(Parse(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,6]}})", "xxxxxx"),
                 "tensor \"w\": BF16[2, 2] needs 8 bytes");
}

TEST(SafetensorsHeader, RefusesOffsetsOutsideTheDataRegion) {
  ExpectDataLoss(Parse(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xx"),
                 "run past the data region of 2 bytes");
  ExpectDataLoss(Parse(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "xxxx"),
                 "end before they begin");
  ExpectDataLoss(Parse(R"({"w":{"dtype":"U8","shape":[1],)"
                       R"("data_offsets":[18446744073709551615,18446744073709551615]}})",
                       "x"),
                 "tensor \"w\"");
}

TEST(SafetensorsHeader, RefusesOverlapsGapsAndTrailingBytes) {
  ExpectDataLoss(Parse(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                       "xxxxxx"),
                 "overlap tensor \"a\"");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "xxx"),
                 "unused");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xxx"),
                 "1 bytes after the last tensor");
}

TEST(SafetensorsHeader, RefusesElementCountOverflow) {
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],)"
                       R"("data_offsets":[0,0]}})",
                       ""),
                 "more elements than fit");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"F64","shape":[2305843009213693952],)"
                       R"("data_offsets":[0,0]}})",
                       ""),
                 "more bytes than fit");
  ExpectDataLoss(Parse(R"({"a":{"dtype":"U8","shape":[18446744073709551615],)"
                       R"("data_offsets":[0,0]}})",
                       ""),
                 "too large");
}

TEST(SafetensorsHeader, SerializeRoundTripsAndPadsToEight) {
  std::vector<SafetensorsTensorInfo> tensors = {
      {"w", DType::kF32, {2, 2}, 0, 16},
      {"b\"q\xc3\xbc", DType::kBF16, {3}, 16, 22},
      {"s", DType::kF8E4M3, {}, 22, 23},
  };
  SafetensorsMetadata metadata = {{"format", "pt"}, {"note", "line\nbreak"}};
  auto prefix = SerializeSafetensorsHeader(tensors, metadata);
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  EXPECT_EQ(prefix->size() % 8, 0u);
  std::string file = *prefix + std::string(23, '\0');
  auto header = ParseSafetensorsHeader(
      std::span(reinterpret_cast<const uint8_t*>(file.data()), file.size()), file.size());
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_EQ(header->tensors, tensors);
  EXPECT_EQ(header->metadata, metadata);
  EXPECT_EQ(header->data_offset(), prefix->size());
}

TEST(SafetensorsHeader, SerializeRefusesBadNames) {
  std::vector<SafetensorsTensorInfo> reserved = {{"__metadata__", DType::kU8, {1}, 0, 1}};
  EXPECT_FALSE(SerializeSafetensorsHeader(reserved, {}).ok());
  std::vector<SafetensorsTensorInfo> bad_utf8 = {{"\xff", DType::kU8, {1}, 0, 1}};
  EXPECT_FALSE(SerializeSafetensorsHeader(bad_utf8, {}).ok());
  std::vector<SafetensorsTensorInfo> twice = {{"a", DType::kU8, {1}, 0, 1},
                                              {"a", DType::kU8, {1}, 1, 2}};
  EXPECT_FALSE(SerializeSafetensorsHeader(twice, {}).ok());
  EXPECT_FALSE(SerializeSafetensorsHeader({}, {{"k", "\xc3"}}).ok());
}

}  // namespace
}  // namespace weightsync
