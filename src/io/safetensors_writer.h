// SafetensorsWriter: writes one .safetensors file whose tensors are known up front, without ever
// holding the whole file in memory, and atomically.
//
// The caller declares every tensor (name, dtype, shape) at Create(). The writer lays out the
// header, creates a hidden temporary file beside the destination, reserves its full size with
// posix_fallocate (so a full disk fails here, with a Status, instead of as SIGBUS on a later page
// fault), maps it read-write and hands out a writable view per tensor: converters write results
// straight into the file, from as many threads as they like (one writer per tensor at a time).
//
// Commit() flushes the mapping (msync), fsyncs the file, renames it to the destination and fsyncs
// the directory: readers see either no file or the complete one. Abort(), or destroying a writer
// that was not committed, deletes the temporary file, so a failed run leaves nothing behind.
//
// Layout: the header lists tensors in declared order; the data region orders them by element size,
// largest first (stable within a size), so with the 8-aligned header every tensor is aligned to its
// element size and the region has no gaps (the reference reader refuses gaps).
#pragma once

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_util.h"
#include "io/safetensors_header.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"

namespace weightsync {

struct TensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

struct SafetensorsWriterOptions {
  SafetensorsMetadata metadata;  // the file's __metadata__ (e.g. {"format": "pt"})
  bool overwrite = false;        // replace an existing destination file
};

class SafetensorsWriter {
 public:
  static Result<SafetensorsWriter> Create(const std::filesystem::path& path,
                                          std::span<const TensorDecl> tensors,
                                          const SafetensorsWriterOptions& options = {});

  SafetensorsWriter(SafetensorsWriter&& other) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&& other) noexcept;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter() { Abort(); }

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temporary_path() const { return temporary_path_; }
  uint64_t file_size() const { return mapping_.size(); }
  // Declared order.
  const std::vector<std::string>& names() const { return names_; }

  // A writable contiguous CPU view of the tensor's bytes in the file (zero-filled at first).
  // Valid until Commit() or Abort(). Safe to call from several threads.
  Result<TensorView> Tensor(std::string_view name) const;

  // Makes the file durable and visible under path(). After an error the temporary file is gone.
  Status Commit();
  // Drops the temporary file; views become invalid. Does nothing after Commit().
  void Abort();

 private:
  SafetensorsWriter() = default;

  std::filesystem::path path_;
  std::filesystem::path temporary_path_;
  bool overwrite_ = false;
  bool active_ = false;  // a temporary file exists and belongs to us
  UniqueFd fd_;
  MemoryMapping mapping_;
  uint64_t data_offset_ = 0;
  std::vector<std::string> names_;
  std::vector<SafetensorsTensorInfo> tensors_;        // declared order
  std::map<std::string, size_t, std::less<>> index_;  // name -> tensors_ index
};

}  // namespace weightsync
