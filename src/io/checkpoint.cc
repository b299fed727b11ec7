#include "io/checkpoint.h"

#include <algorithm>
#include <system_error>

#include "io/checkpoint_index.h"
#include "io/file_util.h"

namespace weightsync {
namespace {

// An index file lists names and file names only, about 100 bytes per tensor: a few MB for the
// largest models.
constexpr size_t kMaxIndexFileSize = 64ull << 20;

// Shard names come from a possibly untrusted index: keep them inside the checkpoint directory.
Status CheckShardName(const std::string& name) {
  std::filesystem::path shard(name);
  if (name.empty() || shard.is_absolute()) {
    return DataLoss("weight_map names the file \"", name, "\", not a relative path");
  }
  for (const auto& part : shard) {
    if (part == "..") return DataLoss("weight_map file \"", name, "\" leaves the directory");
  }
  return Status::Ok();
}

}  // namespace

Result<Checkpoint> Checkpoint::Open(const std::filesystem::path& path, uint64_t max_header_size) {
  Checkpoint checkpoint;
  checkpoint.path_ = path;
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    return NotFound("checkpoint ", path.string(), " does not exist");
  }
  if (std::filesystem::is_directory(status)) {
    const std::filesystem::path index = path / kSafetensorsIndexName;
    if (std::filesystem::exists(index, error)) {
      WS_RETURN_IF_ERROR(checkpoint.OpenIndexed(index, max_header_size));
    } else {
      WS_RETURN_IF_ERROR(checkpoint.OpenAllFiles(path, max_header_size));
    }
  } else {
    WS_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path, max_header_size));
    checkpoint.metadata_ = file.metadata();
    WS_RETURN_IF_ERROR(checkpoint.AddFile(std::move(file)));
  }
  checkpoint.Finish();
  return checkpoint;
}

Status Checkpoint::OpenIndexed(const std::filesystem::path& index_path, uint64_t max_header_size) {
  const std::string context = StrCat("checkpoint index ", index_path.string());
  WS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index_path, kMaxIndexFileSize));
  Result<CheckpointIndex> parsed = ParseCheckpointIndex(text);
  if (!parsed.ok()) return parsed.status().WithContext(context);
  text = std::string();  // the parsed index is all that is needed from here on
  const CheckpointIndex& index = *parsed;
  metadata_ = index.metadata;
  std::vector<size_t> listed(index.files.size());
  for (const CheckpointIndex::Entry& entry : index.weight_map) ++listed[entry.file];
  for (const std::string& file_name : index.files) {
    Status name_ok = CheckShardName(file_name);
    if (!name_ok.ok()) return name_ok.WithContext(context);
  }
  // Each file once, in sorted file-name order; checked against the index both ways.
  const std::filesystem::path directory = index_path.parent_path();
  for (size_t id = 0; id < index.files.size(); ++id) {
    const std::string& file_name = index.files[id];
    Result<SafetensorsFile> file = SafetensorsFile::Open(directory / file_name, max_header_size);
    if (!file.ok()) return file.status().WithContext(context);
    for (const std::string& tensor : file->names()) {
      const std::string* owner = index.FileOf(tensor);
      if (owner == nullptr) {
        return DataLoss(context, ": ", file_name, " holds tensor \"", tensor,
                        "\", which the weight_map does not list");
      }
      if (*owner != file_name) {
        return DataLoss(context, ": tensor \"", tensor, "\" is in both ", file_name, " and ",
                        *owner);
      }
    }
    if (file->names().size() != listed[id]) {  // some tensor listed for it is not in it
      for (const CheckpointIndex::Entry& entry : index.weight_map) {
        if (entry.file == id && !file->Contains(entry.tensor)) {
          return DataLoss(context, ": tensor \"", entry.tensor, "\" is listed in ", file_name,
                          " but that file does not contain it");
        }
      }
    }
    WS_RETURN_IF_ERROR(AddFile(std::move(file).value()));
  }
  return Status::Ok();
}

Status Checkpoint::OpenAllFiles(const std::filesystem::path& directory, uint64_t max_header_size) {
  std::vector<std::filesystem::path> paths;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    // Hidden files include weightsync's own in-progress ".x.tmp-..." files.
    if (entry.path().extension() == ".safetensors" && !name.starts_with(".")) {
      paths.push_back(entry.path());
    }
  }
  if (error) return ErrnoStatus("list directory", directory, error.value());
  if (paths.empty()) {
    return NotFound("checkpoint directory ", directory.string(), " has no ", kSafetensorsIndexName,
                    " and no .safetensors files");
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    WS_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path, max_header_size));
    WS_RETURN_IF_ERROR(AddFile(std::move(file)));
  }
  return Status::Ok();
}

Status Checkpoint::AddFile(SafetensorsFile file) {
  const size_t file_index = files_.size();
  for (const std::string& name : file.names()) {
    auto [it, inserted] = locations_.emplace(name, file_index);
    if (!inserted) {
      return DataLoss("checkpoint ", path_.string(), ": tensor \"", name, "\" is in both ",
                      files_[it->second].path().string(), " and ", file.path().string());
    }
  }
  for (const SafetensorsTensorInfo& info : file.header().tensors) total_bytes_ += info.nbytes();
  files_.push_back(std::move(file));
  return Status::Ok();
}

void Checkpoint::Finish() {
  names_.reserve(locations_.size());
  for (const auto& [name, file_index] : locations_) names_.push_back(name);  // map: sorted
}

Result<const SafetensorsFile*> Checkpoint::FileOf(std::string_view name) const {
  auto it = locations_.find(name);
  if (it == locations_.end()) {
    return NotFound("tensor \"", name, "\" is not in checkpoint ", path_.string());
  }
  return &files_[it->second];
}

Result<TensorView> Checkpoint::Find(std::string_view name) const {
  WS_ASSIGN_OR_RETURN(const SafetensorsFile* file, FileOf(name));
  return file->Find(name);
}

Result<const SafetensorsTensorInfo*> Checkpoint::Info(std::string_view name) const {
  WS_ASSIGN_OR_RETURN(const SafetensorsFile* file, FileOf(name));
  return file->Info(name);
}

}  // namespace weightsync
