#include "io/checkpoint_writer.h"

#include <gtest/gtest.h>

#include "io/checkpoint.h"
#include "io/io_test_util.h"

namespace weightsync {
namespace {

using testing::ScratchDir;

CheckpointWriterOptions ShardsOf(uint64_t max_shard_bytes) {
  CheckpointWriterOptions options;
  options.max_shard_bytes = max_shard_bytes;
  return options;
}

CheckpointWriterOptions Overwrite() {
  CheckpointWriterOptions options;
  options.overwrite = true;
  return options;
}

std::vector<TensorDecl> Layers(int count) {
  std::vector<TensorDecl> tensors;
  for (int i = 0; i < count; ++i) {
    tensors.push_back({StrCat("layers.", i, ".weight"), DType::kBF16, {4, 8}});  // 64 bytes
    tensors.push_back({StrCat("layers.", i, ".scale"), DType::kF32, {2}});       // 8 bytes
  }
  return tensors;
}

Status FillAll(const CheckpointWriter& writer, const std::vector<TensorDecl>& tensors) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    WS_ASSIGN_OR_RETURN(TensorView view, writer.Tensor(tensors[i].name));
    for (int64_t b = 0; b < view.nbytes(); ++b) {
      static_cast<uint8_t*>(view.data)[b] = testing::PatternByte(i, b);
    }
  }
  return Status::Ok();
}

void ExpectContents(const Checkpoint& checkpoint, const std::vector<TensorDecl>& tensors) {
  ASSERT_EQ(checkpoint.names().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto view = checkpoint.Find(tensors[i].name);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    EXPECT_EQ(view->shape, tensors[i].shape);
    for (int64_t b = 0; b < view->nbytes(); ++b) {
      ASSERT_EQ(static_cast<uint8_t*>(view->data)[b], testing::PatternByte(i, b));
    }
  }
}

TEST(CheckpointWriter, ShardsInDeclaredOrderWithIndex) {
  ScratchDir dir;
  const auto tensors = Layers(3);  // 3 x 72 bytes
  auto writer = CheckpointWriter::Create(dir / "out", tensors, ShardsOf(150));
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ(writer->file_names(), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                            "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(writer->total_bytes(), 216u);
  ASSERT_TRUE(FillAll(*writer, tensors).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out"});

  auto checkpoint = Checkpoint::Open(dir / "out");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->metadata().at("total_size"), "216");
  EXPECT_EQ(checkpoint->files().size(), 2u);
  EXPECT_EQ(checkpoint->FileOf("layers.2.scale").value()->path().filename(),
            "model-00002-of-00002.safetensors");
  ExpectContents(*checkpoint, tensors);
}

TEST(CheckpointWriter, OneShardIsModelSafetensorsWithoutIndex) {
  ScratchDir dir;
  const auto tensors = Layers(2);
  auto writer = CheckpointWriter::Create(dir / "out", tensors);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(FillAll(*writer, tensors).ok());
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "model.safetensors.index.json"));
  auto checkpoint = Checkpoint::Open(dir / "out");
  ASSERT_TRUE(checkpoint.ok());
  ExpectContents(*checkpoint, tensors);
}

TEST(CheckpointWriter, WritesASingleFilePath) {
  ScratchDir dir;
  const auto tensors = Layers(2);
  auto writer = CheckpointWriter::Create(dir / "one.safetensors", tensors, ShardsOf(1));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(FillAll(*writer, tensors).ok());
  ASSERT_TRUE(writer->Commit().ok());
  auto checkpoint = Checkpoint::Open(dir / "one.safetensors");
  ASSERT_TRUE(checkpoint.ok());
  ExpectContents(*checkpoint, tensors);
}

TEST(CheckpointWriter, RefusesNonEmptyDestinationUnlessAsked) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "out");
  testing::WriteText(dir / "out" / "old.txt", "old");
  const auto tensors = Layers(1);
  EXPECT_EQ(CheckpointWriter::Create(dir / "out", tensors).status().code(),
            StatusCode::kAlreadyExists);
  auto writer = CheckpointWriter::Create(dir / "out/", tensors, Overwrite());
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE(FillAll(*writer, tensors).ok());
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "old.txt"));
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out"});  // old contents and temporaries gone
  ASSERT_TRUE(Checkpoint::Open(dir / "out").ok());
}

TEST(CheckpointWriter, EmptyDestinationDirectoryIsReplaced) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "out");
  auto writer = CheckpointWriter::Create(dir / "out", Layers(1));
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "model.safetensors"));
}

TEST(CheckpointWriter, AbortLeavesNothingBehind) {
  ScratchDir dir;
  {
    auto writer = CheckpointWriter::Create(dir / "out", Layers(4), ShardsOf(100));
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(dir.List().size(), 1u);  // the temporary directory
  }
  EXPECT_TRUE(dir.List().empty());
  auto writer = CheckpointWriter::Create(dir / "out", Layers(4), ShardsOf(100));
  ASSERT_TRUE(writer.ok());
  writer->Abort();
  EXPECT_TRUE(dir.List().empty());
  EXPECT_FALSE(writer->Commit().ok());
}

TEST(CheckpointWriter, RefusesDuplicateNames) {
  ScratchDir dir;
  std::vector<TensorDecl> tensors = {{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}};
  EXPECT_EQ(CheckpointWriter::Create(dir / "out", tensors, ShardsOf(1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(dir.List().empty());
}

}  // namespace
}  // namespace weightsync
