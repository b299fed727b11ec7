#include "io/safetensors_file.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"

namespace weightsync {
namespace {

using testing::MakeSafetensorsBytes;
using testing::ScratchDir;
using testing::WriteBytes;

void ExpectErrorMentions(const Status& status, std::string_view a, std::string_view b) {
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(a), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(b), std::string::npos) << status.ToString();
}

TEST(SafetensorsFile, FindsViewsIntoTheMapping) {
  ScratchDir dir;
  const std::string data =
      "\x01\x02\x03\x04"
      "abcdefgh";
  WriteBytes(dir / "t.safetensors",
             MakeSafetensorsBytes(R"({"__metadata__":{"format":"pt"},)"
                                  R"("z":{"dtype":"U8","shape":[8],"data_offsets":[4,12]},)"
                                  R"("a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}})",
                                  data));
  auto file = SafetensorsFile::Open(dir / "t.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->names(), (std::vector<std::string>{"a", "z"}));  // data-offset order
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_TRUE(file->Contains("z"));
  EXPECT_FALSE(file->Contains("y"));

  // Moving the file object keeps views valid.
  SafetensorsFile moved = std::move(file).value();
  auto z = moved.Find("z");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->dtype, DType::kU8);
  EXPECT_EQ(z->shape, Shape{8});
  EXPECT_EQ(std::memcmp(z->data, "abcdefgh", 8), 0);
  auto a = moved.Find("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->data_as<int16_t>()[0], 0x0201);

  auto missing = moved.Find("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  ExpectErrorMentions(missing.status(), "nope", "t.safetensors");
}

TEST(SafetensorsFile, ErrorsNameThePath) {
  ScratchDir dir;
  auto missing = SafetensorsFile::Open(dir / "missing.safetensors");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  ExpectErrorMentions(missing.status(), "missing.safetensors", "No such file");

  auto directory = SafetensorsFile::Open(dir.path());
  ExpectErrorMentions(directory.status(), dir.path().string(), "directory");

  WriteBytes(dir / "empty.safetensors", {});
  ExpectErrorMentions(SafetensorsFile::Open(dir / "empty.safetensors").status(),
                      "empty.safetensors", "empty");

  std::vector<uint8_t> bytes = MakeSafetensorsBytes(
      R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(16, '\0'));
  bytes.resize(bytes.size() - 3);
  WriteBytes(dir / "truncated.safetensors", bytes);
  auto truncated = SafetensorsFile::Open(dir / "truncated.safetensors");
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss);
  ExpectErrorMentions(truncated.status(), "truncated.safetensors", "tensor \"w\"");

  bytes.resize(20);  // inside the header
  WriteBytes(dir / "short.safetensors", bytes);
  ExpectErrorMentions(SafetensorsFile::Open(dir / "short.safetensors").status(),
                      "short.safetensors", "runs past the end");

  WriteBytes(dir / "tiny.safetensors", std::vector<uint8_t>{1, 0, 0});
  ExpectErrorMentions(SafetensorsFile::Open(dir / "tiny.safetensors").status(), "tiny.safetensors",
                      "too short");
}

TEST(SafetensorsFile, HonoursTheHeaderLimit) {
  ScratchDir dir;
  WriteBytes(dir / "t.safetensors", MakeSafetensorsBytes("{}      ", ""));
  EXPECT_TRUE(SafetensorsFile::Open(dir / "t.safetensors").ok());
  ExpectErrorMentions(SafetensorsFile::Open(dir / "t.safetensors", 4).status(), "t.safetensors",
                      "exceeds the limit");
}

}  // namespace
}  // namespace weightsync
