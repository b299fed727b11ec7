// Checkpoint: the tensors of a model, in one .safetensors file or spread over several.
//
// Open() accepts:
//   - a .safetensors file;
//   - a directory with model.safetensors.index.json ({"metadata": {...}, "weight_map":
//     {"tensor": "file"}}): only the files the index names are opened; every file must exist,
//     every tensor the index lists must be in the file it names, and every tensor in those files
//     must be listed under that file (a tensor in two files is an error);
//   - a directory without an index: every *.safetensors file in it; a tensor name present in two
//     files is an error naming both.
//
// Views point into the files' mappings and live as long as the Checkpoint (movable, not copyable).
// Thread-safety: const methods may be called concurrently.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors_file.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"

namespace weightsync {

inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";

class Checkpoint {
 public:
  static Result<Checkpoint> Open(const std::filesystem::path& path,
                                 uint64_t max_header_size = kDefaultMaxSafetensorsHeaderSize);

  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Every tensor name, sorted.
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(std::string_view name) const { return locations_.find(name) != locations_.end(); }
  // NotFound names the tensor and the checkpoint.
  Result<TensorView> Find(std::string_view name) const;
  Result<const SafetensorsTensorInfo*> Info(std::string_view name) const;
  // The file holding a tensor.
  Result<const SafetensorsFile*> FileOf(std::string_view name) const;

  // Sum of the tensors' data bytes (not counting headers).
  uint64_t total_bytes() const { return total_bytes_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // The index's "metadata" object, or the single file's __metadata__; strings only (non-string
  // index values such as total_size are written in their JSON form).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Checkpoint() = default;
  Status OpenIndexed(const std::filesystem::path& index_path, uint64_t max_header_size);
  Status OpenAllFiles(const std::filesystem::path& directory, uint64_t max_header_size);
  Status AddFile(SafetensorsFile file);
  void Finish();

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> locations_;  // name -> files_ index
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
  uint64_t total_bytes_ = 0;
};

}  // namespace weightsync
