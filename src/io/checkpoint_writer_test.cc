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

Status WriteFilled(const std::filesystem::path& path, const std::vector<TensorDecl>& tensors,
                   const CheckpointWriterOptions& options = {}) {
  WS_ASSIGN_OR_RETURN(CheckpointWriter writer, CheckpointWriter::Create(path, tensors, options));
  WS_RETURN_IF_ERROR(FillAll(writer, tensors));
  return writer.Commit();
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
  const auto tensors = Layers(1);
  ASSERT_TRUE(WriteFilled(dir / "out", tensors).ok());
  EXPECT_EQ(CheckpointWriter::Create(dir / "out", tensors).status().code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(WriteFilled(dir / "out/", Layers(2), Overwrite()).ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out"});  // old contents and temporaries gone
  auto checkpoint = Checkpoint::Open(dir / "out");
  ASSERT_TRUE(checkpoint.ok());
  ExpectContents(*checkpoint, Layers(2));
}

TEST(CheckpointWriter, MarksItsOutput) {
  ScratchDir dir;
  ASSERT_TRUE(WriteFilled(dir / "out", Layers(3), ShardsOf(150)).ok());
  EXPECT_EQ(testing::ReadText(dir / "out" / kOutputMarkerName),
            OutputMarkerText({"model-00001-of-00002.safetensors",
                              "model-00002-of-00002.safetensors", "model.safetensors.index.json"}));
  auto checkpoint = Checkpoint::Open(dir / "out");
  ASSERT_TRUE(checkpoint.ok());
  for (const SafetensorsFile& file : checkpoint->files()) {
    EXPECT_EQ(file.metadata().at("written_by"), "weightsync") << file.path();
  }
}

// The user's files beside a checkpoint (here: config.json, notes) are never deleted.
TEST(CheckpointWriter, OverwriteRefusesADirectoryItDidNotWrite) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "out");
  testing::WriteText(dir / "out" / "config.json", "{}");
  testing::WriteText(dir / "out" / "model.safetensors", "not ours");
  Status status = WriteFilled(dir / "out", Layers(1), Overwrite());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find(kOutputMarkerName), std::string::npos) << status.ToString();
  EXPECT_EQ(testing::ReadText(dir / "out" / "config.json"), "{}");
  EXPECT_EQ(testing::ReadText(dir / "out" / "model.safetensors"), "not ours");
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out"});  // no temporaries left
}

TEST(CheckpointWriter, OverwriteRefusesAMarkedDirectoryWithAFileItDidNotWrite) {
  ScratchDir dir;
  ASSERT_TRUE(WriteFilled(dir / "out", Layers(1)).ok());
  testing::WriteText(dir / "out" / "notes.txt", "mine");
  Status status = WriteFilled(dir / "out", Layers(2), Overwrite());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("notes.txt"), std::string::npos) << status.ToString();
  EXPECT_EQ(testing::ReadText(dir / "out" / "notes.txt"), "mine");
  auto checkpoint = Checkpoint::Open(dir / "out");  // the old output is untouched
  ASSERT_TRUE(checkpoint.ok());
  ExpectContents(*checkpoint, Layers(1));
}

TEST(CheckpointWriter, OverwriteOfASingleFileNeedsItsMark) {
  ScratchDir dir;
  testing::WriteText(dir / "theirs.safetensors", "not a safetensors file");
  EXPECT_EQ(WriteFilled(dir / "theirs.safetensors", Layers(1), Overwrite()).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(testing::ReadText(dir / "theirs.safetensors"), "not a safetensors file");

  ASSERT_TRUE(WriteFilled(dir / "ours.safetensors", Layers(1)).ok());
  ASSERT_TRUE(WriteFilled(dir / "ours.safetensors", Layers(2), Overwrite()).ok());
  auto checkpoint = Checkpoint::Open(dir / "ours.safetensors");
  ASSERT_TRUE(checkpoint.ok());
  ExpectContents(*checkpoint, Layers(2));
}

TEST(CheckpointWriter, OverwriteRefusesASymlink) {
  ScratchDir dir;
  ASSERT_TRUE(WriteFilled(dir / "out", Layers(1)).ok());
  std::filesystem::create_directory_symlink(dir / "out", dir / "link");
  EXPECT_EQ(WriteFilled(dir / "link", Layers(1), Overwrite()).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "model.safetensors"));
}

TEST(CheckpointWriter, SideFilesAreWrittenAndListed) {
  ScratchDir dir;
  const auto tensors = Layers(1);
  auto writer = CheckpointWriter::Create(dir / "out", tensors);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(FillAll(*writer, tensors).ok());
  ASSERT_TRUE(writer->AddFile("config.json", "{\"a\": 1}").ok());
  EXPECT_EQ(writer->AddFile("model.safetensors", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->AddFile("../escape", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->AddFile(kOutputMarkerName, "x").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_EQ(testing::ReadText(dir / "out" / "config.json"), "{\"a\": 1}");
  EXPECT_EQ(testing::ReadText(dir / "out" / kOutputMarkerName),
            OutputMarkerText({"model.safetensors", "config.json"}));
  // A side file listed in the marker is replaced with the rest.
  ASSERT_TRUE(WriteFilled(dir / "out", tensors, Overwrite()).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "config.json"));

  auto single = CheckpointWriter::Create(dir / "one.safetensors", tensors);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->AddFile("config.json", "{}").code(), StatusCode::kFailedPrecondition);
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
