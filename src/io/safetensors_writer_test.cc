#include "io/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "io/io_test_util.h"
#include "io/safetensors_file.h"

namespace weightsync {
namespace {

using testing::ScratchDir;

SafetensorsWriterOptions Overwrite() {
  SafetensorsWriterOptions options;
  options.overwrite = true;
  return options;
}

std::vector<TensorDecl> SomeTensors() {
  return {
      {"layer.weight", DType::kF8E4M3, {3, 5}},
      {"layer.scale", DType::kF32, {1, 1}},
      {"bias", DType::kBF16, {7}},
      {"count", DType::kI64, {}},
      {"nothing", DType::kF16, {0, 4}},
  };
}

void Fill(const TensorView& view, uint64_t seed) {
  auto* bytes = static_cast<uint8_t*>(view.data);
  for (int64_t i = 0; i < view.nbytes(); ++i) bytes[i] = testing::PatternByte(seed, i);
}

TEST(SafetensorsWriter, WritesAlignedFileThatReadsBack) {
  ScratchDir dir;
  const auto tensors = SomeTensors();
  SafetensorsWriterOptions options;
  options.metadata = {{"format", "pt"}};
  auto writer = SafetensorsWriter::Create(dir / "out.safetensors", tensors, options);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ(writer->names()[0], "layer.weight");  // declared order
  // Writers in several threads, one tensor each.
  std::vector<std::thread> threads;
  for (size_t i = 0; i < tensors.size(); ++i) {
    threads.emplace_back([&, i] {
      auto view = writer->Tensor(tensors[i].name);
      ASSERT_TRUE(view.ok());
      EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % DTypeSize(tensors[i].dtype), 0u);
      Fill(*view, i);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));  // not before Commit
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.safetensors"});

  auto file = SafetensorsFile::Open(dir / "out.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->header().data_offset() % 8, 0u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto view = file->Find(tensors[i].name);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(view->dtype, tensors[i].dtype);
    EXPECT_EQ(view->shape, tensors[i].shape);
    for (int64_t b = 0; b < view->nbytes(); ++b) {
      ASSERT_EQ(static_cast<uint8_t*>(view->data)[b], testing::PatternByte(i, b));
    }
  }
}

TEST(SafetensorsWriter, AbortAndDestructionLeaveNothing) {
  ScratchDir dir;
  {
    auto writer = SafetensorsWriter::Create(dir / "a.safetensors", SomeTensors());
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(dir.List().size(), 1u);  // the hidden temporary file
    EXPECT_TRUE(dir.List()[0].starts_with(".a.safetensors.tmp-"));
  }
  EXPECT_TRUE(dir.List().empty());
  auto writer = SafetensorsWriter::Create(dir / "b.safetensors", SomeTensors());
  ASSERT_TRUE(writer.ok());
  writer->Abort();
  EXPECT_TRUE(dir.List().empty());
  EXPECT_FALSE(writer->Tensor("bias").ok());
  EXPECT_EQ(writer->Commit().code(), StatusCode::kFailedPrecondition);
}

TEST(SafetensorsWriter, RefusesToOverwriteUnlessAsked) {
  ScratchDir dir;
  testing::WriteText(dir / "x.safetensors", "old");
  auto refused = SafetensorsWriter::Create(dir / "x.safetensors", SomeTensors());
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);
  auto writer = SafetensorsWriter::Create(dir / "x.safetensors", SomeTensors(), Overwrite());
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_TRUE(SafetensorsFile::Open(dir / "x.safetensors").ok());
}

TEST(SafetensorsWriter, RefusesBadDeclarations) {
  ScratchDir dir;
  std::vector<TensorDecl> twice = {{"a", DType::kU8, {1}}, {"a", DType::kU8, {2}}};
  EXPECT_EQ(SafetensorsWriter::Create(dir / "t.safetensors", twice).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<TensorDecl> negative = {{"a", DType::kU8, {-1}}};
  EXPECT_FALSE(SafetensorsWriter::Create(dir / "t.safetensors", negative).ok());
  EXPECT_FALSE(SafetensorsWriter::Create(dir / "no/such/dir/t.safetensors", SomeTensors()).ok());
  EXPECT_TRUE(dir.List().empty());
}

TEST(SafetensorsWriter, WritesAFileWithNoTensors) {
  ScratchDir dir;
  auto writer = SafetensorsWriter::Create(dir / "e.safetensors", {});
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->Commit().ok());
  auto file = SafetensorsFile::Open(dir / "e.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE(file->names().empty());
}

}  // namespace
}  // namespace weightsync
