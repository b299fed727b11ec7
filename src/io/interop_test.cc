// Interoperability with the reference implementation: the Python `safetensors` package (Rust
// underneath) writes files that we read byte for byte, and reads back files that we write.
// Skipped, with a message, when the configured Python lacks safetensors or numpy.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/io_test_util.h"
#include "io/safetensors_file.h"
#include "io/safetensors_writer.h"

namespace weightsync {
namespace {

using testing::ScratchDir;

const std::string kScript = WEIGHTSYNC_SOURCE_DIR "/src/io/testdata/safetensors_interop.py";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunShell(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    result.output.append(buffer.data(), n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Quote(const std::string& text) { return "'" + text + "'"; }

std::string Python() { return Quote(WEIGHTSYNC_PYTHON); }

// Empty when the reference package is usable, else why not.
const std::string& ReferenceUnavailableReason() {
  static const std::string reason = [] {
    CommandResult probe = RunShell(Python() + " -c 'import numpy, safetensors'");
    if (probe.exit_code == 0) return std::string();
    return StrCat("Python ", WEIGHTSYNC_PYTHON,
                  " cannot import numpy and safetensors (configure with -DWEIGHTSYNC_PYTHON=...; "
                  "CI installs requirements-dev.txt): ",
                  probe.output);
  }();
  return reason;
}

#define SKIP_WITHOUT_REFERENCE()                  \
  if (!ReferenceUnavailableReason().empty()) {    \
    GTEST_SKIP() << ReferenceUnavailableReason(); \
  }

std::vector<uint8_t> FromHex(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

TEST(SafetensorsInterop, ReadsFilesTheReferenceWrites) {
  SKIP_WITHOUT_REFERENCE();
  ScratchDir dir;
  CommandResult write =
      RunShell(StrCat(Python(), " ", Quote(kScript), " write ", Quote(dir.path().string())));
  ASSERT_EQ(write.exit_code, 0) << write.output;
  nlohmann::json manifest = nlohmann::json::parse(testing::ReadBytes(dir / "manifest.json"));

  auto file = SafetensorsFile::Open(dir / "ref.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->metadata(), manifest["metadata"].get<SafetensorsMetadata>());
  ASSERT_EQ(file->names().size(), manifest["tensors"].size());
  for (const auto& [name, expected] : manifest["tensors"].items()) {
    SCOPED_TRACE(name);
    auto view = file->Find(name);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    EXPECT_EQ(DTypeSafetensorsName(view->dtype), expected["dtype"].get<std::string>());
    EXPECT_EQ(view->shape, expected["shape"].get<Shape>());
    std::vector<uint8_t> want = FromHex(expected["hex"].get<std::string>());
    ASSERT_EQ(static_cast<size_t>(view->nbytes()), want.size());
    const auto* got = static_cast<const uint8_t*>(view->data);
    EXPECT_EQ(std::vector<uint8_t>(got, got + want.size()), want);
    // The reference aligns tensors too; our views must be usable as typed pointers.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % DTypeSize(view->dtype), 0u);
  }
  EXPECT_TRUE(Checkpoint::Open(dir / "ref.safetensors").ok());
}

std::vector<TensorDecl> VariedTensors() {
  return {
      {"model.embed_tokens.weight", DType::kBF16, {16, 8}},
      {"model.layers.0.mlp.down_proj.weight", DType::kF8E4M3, {8, 12}},
      {"model.layers.0.mlp.down_proj.weight_scale_inv", DType::kF32, {1, 1}},
      {"model.norm.weight", DType::kF16, {8}},
      {"model.step", DType::kI64, {}},
      {"model.mask", DType::kU8, {3, 5}},
      {"model.empty", DType::kF32, {0}},
      {"model.empty.middle", DType::kBF16, {2, 0, 3}},
      {"model.scales.e8m0", DType::kF8E8M0, {3}},
      {"unicode.gr\xc3\xbc\xc3\x9f", DType::kI32, {2}},
  };
}

nlohmann::json DescribeAndFill(const std::vector<TensorDecl>& tensors,
                               const std::function<Result<TensorView>(const std::string&)>& find) {
  nlohmann::json described = nlohmann::json::array();
  for (size_t i = 0; i < tensors.size(); ++i) {
    Result<TensorView> view = find(tensors[i].name);
    EXPECT_TRUE(view.ok()) << view.status().ToString();
    if (!view.ok()) continue;
    for (int64_t b = 0; b < view->nbytes(); ++b) {
      static_cast<uint8_t*>(view->data)[b] = testing::PatternByte(i, static_cast<uint64_t>(b));
    }
    described.push_back({{"name", tensors[i].name},
                         {"dtype", DTypeSafetensorsName(tensors[i].dtype)},
                         {"shape", tensors[i].shape},
                         {"seed", i}});
  }
  return described;
}

TEST(SafetensorsInterop, ReferenceReadsFilesWeWrite) {
  SKIP_WITHOUT_REFERENCE();
  ScratchDir dir;
  const auto tensors = VariedTensors();
  const SafetensorsMetadata metadata = {{"format", "pt"}, {"writer", "weightsync"}};
  nlohmann::json spec;

  SafetensorsWriterOptions file_options;
  file_options.metadata = metadata;
  auto writer = SafetensorsWriter::Create(dir / "ours.safetensors", tensors, file_options);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  nlohmann::json described =
      DescribeAndFill(tensors, [&](const std::string& name) { return writer->Tensor(name); });
  ASSERT_TRUE(writer->Commit().ok());
  spec["files"].push_back({{"path", (dir / "ours.safetensors").string()},
                           {"metadata", metadata},
                           {"tensors", described}});

  CheckpointWriterOptions checkpoint_options;
  checkpoint_options.metadata = metadata;
  checkpoint_options.max_shard_bytes = 200;
  auto sharded = CheckpointWriter::Create(dir / "sharded", tensors, checkpoint_options);
  ASSERT_TRUE(sharded.ok()) << sharded.status().ToString();
  ASSERT_GT(sharded->file_names().size(), 1u);
  described =
      DescribeAndFill(tensors, [&](const std::string& name) { return sharded->Tensor(name); });
  ASSERT_TRUE(sharded->Commit().ok());
  SafetensorsMetadata marked = metadata;  // CheckpointWriter marks every file it writes
  marked[std::string(kWrittenByKey)] = std::string(kWrittenByValue);
  spec["checkpoints"].push_back(
      {{"dir", (dir / "sharded").string()}, {"metadata", marked}, {"tensors", described}});

  testing::WriteText(dir / "spec.json", spec.dump());
  CommandResult check = RunShell(
      StrCat(Python(), " ", Quote(kScript), " check ", Quote((dir / "spec.json").string())));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("OK"), std::string::npos) << check.output;
}

}  // namespace
}  // namespace weightsync
