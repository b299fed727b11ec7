#include "io/output_location.h"

#include <gtest/gtest.h>

#include "io/checkpoint_writer.h"
#include "io/io_test_util.h"

namespace weightsync {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// A two-file checkpoint directory at `path`.
Checkpoint MakeInput(const fs::path& path) {
  fs::create_directories(path.parent_path());
  std::vector<TensorDecl> tensors = {{"a", DType::kU8, {64}}, {"b", DType::kU8, {64}}};
  CheckpointWriterOptions options;
  options.max_shard_bytes = 64;
  auto writer = CheckpointWriter::Create(path, tensors, options);
  EXPECT_TRUE(writer.ok() && writer->Commit().ok());
  auto checkpoint = Checkpoint::Open(path);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  return std::move(checkpoint).value();
}

void ExpectRefused(const fs::path& output, const Checkpoint& input, std::string_view relation) {
  Status status = CheckOutputApartFromInput(output, input);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << output;
  EXPECT_NE(status.message().find(relation), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(output.string()), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find(input.path().string()), std::string::npos) << status.ToString();
}

TEST(OutputLocation, RefusesTheInputItself) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "ck");
  ExpectRefused(dir / "ck", input, "is the input");
  ExpectRefused(dir.path().string() + "/ck/", input, "is the input");
  ExpectRefused(dir / "ck" / ".." / "ck", input, "is the input");
}

TEST(OutputLocation, RefusesAPathInsideTheInput) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "ck");
  ExpectRefused(dir / "ck" / "converted", input, "lies inside the input");
  ExpectRefused(dir / "ck" / "out.safetensors", input, "lies inside the input");
}

TEST(OutputLocation, RefusesAPathContainingTheInput) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "models" / "ck");
  ExpectRefused(dir / "models", input, "contains the input");
  ExpectRefused(dir.path(), input, "contains the input");
}

TEST(OutputLocation, RefusesAFileOfTheInput) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "ck");
  ExpectRefused(dir / "ck" / "model-00001-of-00002.safetensors", input, "lies inside the input");
  // An input that is one file.
  auto single = Checkpoint::Open(dir / "ck" / "model-00002-of-00002.safetensors");
  ASSERT_TRUE(single.ok());
  ExpectRefused(dir / "ck" / "model-00002-of-00002.safetensors", *single, "is the input");
  ExpectRefused(dir / "ck", *single, "contains the input");
}

TEST(OutputLocation, FollowsSymbolicLinks) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "ck");
  fs::create_directory_symlink(dir / "ck", dir / "link");
  ExpectRefused(dir / "link", input, "is the input");
  ExpectRefused(dir / "link" / "new", input, "lies inside the input");
  // Hugging Face's cache: the snapshot's files are links into blobs/, outside the input folder.
  fs::create_directories(dir / "blobs");
  fs::rename(dir / "ck" / "model-00001-of-00002.safetensors", dir / "blobs" / "1");
  fs::create_symlink(dir / "blobs" / "1", dir / "ck" / "model-00001-of-00002.safetensors");
  Checkpoint cached = std::move(Checkpoint::Open(dir / "ck")).value();
  ExpectRefused(dir / "blobs" / "1", cached, "is the input's file");
  ExpectRefused(dir / "blobs", cached, "contains the input's file");
}

TEST(OutputLocation, AcceptsSeparatePaths) {
  ScratchDir dir;
  Checkpoint input = MakeInput(dir / "ck");
  EXPECT_TRUE(CheckOutputApartFromInput(dir / "ck-converted", input).ok());
  EXPECT_TRUE(CheckOutputApartFromInput(dir / "ck.safetensors", input).ok());
  EXPECT_TRUE(CheckOutputApartFromInput(dir / "new" / "deeper", input).ok());
}

}  // namespace
}  // namespace weightsync
