// SafetensorsFile: a validated, memory-mapped safetensors file.
//
// Open() maps the whole file read-only (PROT_READ, MAP_PRIVATE), so pages are read on demand and
// shared with the page cache; nothing is copied. Tensor views point into the mapping and stay
// valid while the SafetensorsFile lives (moving it keeps them valid: the mapping does not move).
//
// The file must not be truncated or rewritten in place while open: touching a page past a new
// end of file raises SIGBUS. weightsync's own writer never does that (it renames new files into
// place), and neither do the usual checkpoint writers.
//
// Data pointers are aligned to the element size when the header length and offsets are
// (the reference writer and ours guarantee it); other writers may produce unaligned tensors.
//
// Thread-safety: all const methods may be called concurrently.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_util.h"
#include "io/safetensors_header.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"

namespace weightsync {

class SafetensorsFile {
 public:
  // Errors name the path: missing files, directories, empty or truncated files, bad headers.
  static Result<SafetensorsFile> Open(const std::filesystem::path& path,
                                      uint64_t max_header_size = kDefaultMaxSafetensorsHeaderSize);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

  // Tensor names in file order (by data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  // A contiguous CPU view into the mapping; NotFound naming the tensor and the file.
  Result<TensorView> Find(std::string_view name) const;
  // dtype, shape and offsets of one tensor, without touching its data.
  Result<const SafetensorsTensorInfo*> Info(std::string_view name) const;

  const SafetensorsHeader& header() const { return header_; }
  const SafetensorsMetadata& metadata() const { return header_.metadata; }

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  uint64_t file_size_ = 0;
  MemoryMapping mapping_;
  SafetensorsHeader header_;
  std::vector<std::string> names_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> header_.tensors index
};

}  // namespace weightsync
