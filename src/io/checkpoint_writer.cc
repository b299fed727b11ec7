#include "io/checkpoint_writer.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <system_error>

#include "io/checkpoint.h"

namespace weightsync {
namespace {

std::string ShardName(size_t index, size_t count) {
  if (count == 1) return "model.safetensors";
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

// Greedy split in declared order: a new shard starts when the next tensor would not fit.
std::vector<std::vector<TensorDecl>> PlanShards(std::span<const TensorDecl> tensors,
                                                const std::vector<uint64_t>& bytes,
                                                uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorDecl>> shards(1);
  uint64_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!shards.back().empty() && bytes[i] > max_shard_bytes - std::min(current, max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(tensors[i]);
    current += bytes[i];
  }
  return shards;
}

bool IsNonEmptyDirectoryOrFile(const std::filesystem::path& path, std::error_code& error) {
  if (!std::filesystem::exists(path, error)) return false;
  if (!std::filesystem::is_directory(path, error)) return true;
  return !std::filesystem::is_empty(path, error);
}

}  // namespace

Result<CheckpointWriter> CheckpointWriter::Create(const std::filesystem::path& path,
                                                  std::span<const TensorDecl> tensors,
                                                  const CheckpointWriterOptions& options) {
  const std::string context = StrCat("writing checkpoint ", path.string());
  CheckpointWriter writer;
  // "out/" names the directory "out"; the temporary sibling must sit next to it, not inside.
  writer.path_ = path.has_filename() ? path : path.parent_path();
  writer.overwrite_ = options.overwrite;
  std::vector<uint64_t> bytes;
  for (const TensorDecl& decl : tensors) {
    Result<uint64_t> size = SafetensorsTensorBytes(decl.name, decl.dtype, decl.shape);
    if (!size.ok()) return size.status().WithContext(context);
    bytes.push_back(*size);
    writer.total_bytes_ += *size;
    if (writer.shard_of_.contains(decl.name)) {
      return InvalidArgument(context, ": tensor \"", decl.name, "\" declared twice");
    }
    writer.shard_of_.emplace(decl.name, 0);
  }
  SafetensorsMetadata metadata = options.metadata;
  metadata[std::string(kWrittenByKey)] = std::string(kWrittenByValue);
  SafetensorsWriterOptions file_options{metadata, options.overwrite};
  std::error_code error;
  const bool occupied = IsNonEmptyDirectoryOrFile(writer.path_, error);
  if (occupied && options.overwrite) {
    if (Status s = CheckReplaceable(writer.path_); !s.ok()) return s.WithContext(context);
  }

  if (writer.path_.extension() == ".safetensors") {
    WS_ASSIGN_OR_RETURN(SafetensorsWriter file,
                        SafetensorsWriter::Create(writer.path_, tensors, file_options));
    writer.shards_.push_back(std::move(file));
    writer.file_names_.push_back(writer.path_.filename().string());
    return writer;
  }

  if (options.max_shard_bytes == 0) return InvalidArgument(context, ": max_shard_bytes is 0");
  if (occupied && !options.overwrite) {
    return AlreadyExists(context,
                         ": the destination exists and is not empty (overwrite not requested)");
  }
  writer.temporary_directory_ = TemporarySibling(writer.path_);
  if (::mkdir(writer.temporary_directory_.c_str(), 0777) != 0) {
    return ErrnoStatus("create directory", writer.temporary_directory_, errno);
  }
  const auto plan = PlanShards(tensors, bytes, options.max_shard_bytes);
  for (size_t s = 0; s < plan.size(); ++s) {
    writer.file_names_.push_back(ShardName(s, plan.size()));
    SafetensorsWriterOptions shard_options{metadata, /*overwrite=*/false};
    WS_ASSIGN_OR_RETURN(
        SafetensorsWriter shard,
        SafetensorsWriter::Create(writer.temporary_directory_ / writer.file_names_[s], plan[s],
                                  shard_options));
    writer.shards_.push_back(std::move(shard));
    for (const TensorDecl& decl : plan[s]) writer.shard_of_[decl.name] = s;
  }
  return writer;
}

CheckpointWriter::CheckpointWriter(CheckpointWriter&& other) noexcept { *this = std::move(other); }

CheckpointWriter& CheckpointWriter::operator=(CheckpointWriter&& other) noexcept {
  if (this != &other) {
    Abort();
    path_ = std::move(other.path_);
    temporary_directory_ = std::exchange(other.temporary_directory_, {});
    overwrite_ = other.overwrite_;
    shards_ = std::move(other.shards_);
    other.shards_.clear();
    file_names_ = std::move(other.file_names_);
    side_files_ = std::move(other.side_files_);
    shard_of_ = std::move(other.shard_of_);
    total_bytes_ = other.total_bytes_;
  }
  return *this;
}

Result<TensorView> CheckpointWriter::Tensor(std::string_view name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end() || shards_.empty()) {
    return NotFound("tensor \"", name, "\" was not declared for checkpoint ", path_.string());
  }
  return shards_[it->second].Tensor(name);
}

Status CheckpointWriter::Commit() {
  if (shards_.empty())
    return FailedPrecondition("checkpoint writer for ", path_.string(), " is closed");
  Status status = temporary_directory_.empty() ? shards_[0].Commit() : CommitDirectory();
  if (!status.ok()) Abort();
  shards_.clear();
  return status;
}

Status CheckpointWriter::AddFile(std::string_view name, std::string_view contents) {
  if (temporary_directory_.empty() || shards_.empty()) {
    return FailedPrecondition("side file ", name, ": checkpoint ", path_.string(),
                              " is a single file or closed; side files need a directory output");
  }
  const std::string file(name);
  const bool reserved =
      file == kSafetensorsIndexName || file == kOutputMarkerName ||
      std::find(file_names_.begin(), file_names_.end(), file) != file_names_.end() ||
      std::find(side_files_.begin(), side_files_.end(), file) != side_files_.end();
  if (reserved || file.empty() || file.find('/') != std::string::npos || file.starts_with(".")) {
    return InvalidArgument("side file \"", name, "\" for checkpoint ", path_.string(),
                           ": not a plain file name, or one the checkpoint already uses");
  }
  WS_RETURN_IF_ERROR(WriteNewFile(temporary_directory_ / file, contents));
  side_files_.push_back(file);
  return Status::Ok();
}

Status CheckpointWriter::WriteMarker() const {
  std::vector<std::string> files = file_names_;
  if (shards_.size() > 1) files.emplace_back(kSafetensorsIndexName);
  files.insert(files.end(), side_files_.begin(), side_files_.end());
  return WriteNewFile(temporary_directory_ / kOutputMarkerName, OutputMarkerText(files));
}

Status CheckpointWriter::CommitDirectory() {
  for (SafetensorsWriter& shard : shards_) WS_RETURN_IF_ERROR(shard.Commit());
  if (shards_.size() > 1) {
    nlohmann::json index;
    index["metadata"]["total_size"] = total_bytes_;
    index["weight_map"] = nlohmann::json::object();
    for (const auto& [name, shard] : shard_of_) index["weight_map"][name] = file_names_[shard];
    std::string text;
    try {  // names were checked for valid UTF-8 by the shard headers; dump cannot throw
      text = index.dump(2) + "\n";
    } catch (const nlohmann::json::exception& e) {
      return Internal("serializing ", kSafetensorsIndexName, ": ", e.what());
    }
    WS_RETURN_IF_ERROR(WriteNewFile(temporary_directory_ / kSafetensorsIndexName, text));
  }
  WS_RETURN_IF_ERROR(WriteMarker());
  WS_RETURN_IF_ERROR(FsyncDirectory(temporary_directory_));

  // Move into place. rename() replaces a missing or empty directory atomically by itself.
  std::error_code error;
  const bool occupied = IsNonEmptyDirectoryOrFile(path_, error);
  if (occupied && !overwrite_) {
    return AlreadyExists("checkpoint ", path_.string(), " appeared while writing it");
  }
  if (occupied) {
    WS_RETURN_IF_ERROR(ReplaceOccupiedDestination());
  } else if (::rename(temporary_directory_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(StrCat("rename ", temporary_directory_.string(), " to"), path_, errno);
  }
  temporary_directory_.clear();
  return FsyncDirectory(path_.parent_path());
}

// Swaps the new directory in for an old one that weightsync wrote, then deletes the old one's
// listed files. Checked again here: files may have been added since Create().
Status CheckpointWriter::ReplaceOccupiedDestination() {
  WS_RETURN_IF_ERROR(CheckReplaceable(path_));
  bool swapped = false;
#ifdef RENAME_EXCHANGE
  swapped = ::renameat2(AT_FDCWD, temporary_directory_.c_str(), AT_FDCWD, path_.c_str(),
                        RENAME_EXCHANGE) == 0;
#endif
  if (!swapped) {  // no atomic swap here: move the old one aside, leaving a short window
    std::filesystem::path aside = TemporarySibling(path_);
    if (::rename(path_.c_str(), aside.c_str()) != 0) return ErrnoStatus("move aside", path_, errno);
    if (::rename(temporary_directory_.c_str(), path_.c_str()) != 0) {
      Status status = ErrnoStatus("rename into place", path_, errno);
      ::rename(aside.c_str(), path_.c_str());  // put the old checkpoint back
      return status;
    }
    temporary_directory_ = aside;
  }
  // temporary_directory_ now names the old checkpoint; the new one is in place either way.
  std::filesystem::path old = std::exchange(temporary_directory_, {});
  return RemoveMarkedDirectory(old);
}

void CheckpointWriter::Abort() {
  for (SafetensorsWriter& shard : shards_) shard.Abort();
  shards_.clear();
  if (!temporary_directory_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(temporary_directory_, error);
    temporary_directory_.clear();
  }
}

}  // namespace weightsync
