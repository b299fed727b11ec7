// CheckpointWriter: writes a checkpoint as one .safetensors file or as a sharded directory, the
// layout Hugging Face uses, atomically.
//
// A path ending in ".safetensors" gives one file (a SafetensorsWriter; max_shard_bytes is not
// applied). Any other path is a directory: tensors are split, in declared order, over
// model-00001-of-0000N.safetensors files of at most max_shard_bytes of data each (a tensor larger
// than that gets a file of its own), plus model.safetensors.index.json with metadata.total_size
// and the weight_map. With a single shard the file is model.safetensors and there is no index,
// as transformers' save_pretrained does.
//
// Everything is written into a hidden temporary directory beside the destination, which Commit()
// renames into place. Abort() or destruction without Commit() removes the temporary directory.
//
// Output is marked as weightsync's: every file's __metadata__ carries written_by=weightsync, and a
// directory gets weightsync-output.json listing every file written into it. An existing non-empty
// destination is refused unless overwrite is set, and even then it is replaced only when it is
// marked (a file with the metadata; a directory with the marker whose every entry the marker
// lists): files weightsync did not write are never deleted. The replacement is an atomic swap
// (renameat2 RENAME_EXCHANGE) where the file system allows, else the old one is moved aside first;
// the old directory's listed files are then deleted, one by one.
#pragma once

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/output_marker.h"
#include "io/safetensors_writer.h"

namespace weightsync {

struct CheckpointWriterOptions {
  uint64_t max_shard_bytes = 5ull << 30;  // the convert.max_shard_size default
  SafetensorsMetadata metadata;           // each file's __metadata__
  bool overwrite = false;
};

class CheckpointWriter {
 public:
  static Result<CheckpointWriter> Create(const std::filesystem::path& path,
                                         std::span<const TensorDecl> tensors,
                                         const CheckpointWriterOptions& options = {});

  CheckpointWriter(CheckpointWriter&& other) noexcept;
  CheckpointWriter& operator=(CheckpointWriter&& other) noexcept;
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter() { Abort(); }

  // A writable view into whichever file holds the tensor; thread-safe.
  Result<TensorView> Tensor(std::string_view name) const;
  // File names (relative to the directory, or the single file's name), in shard order.
  const std::vector<std::string>& file_names() const { return file_names_; }
  // Sum of the tensors' data bytes, as written to metadata.total_size.
  uint64_t total_bytes() const { return total_bytes_; }

  // Adds a small side file (config.json, tokenizer files) to a directory output, written now into
  // the temporary directory and listed in the marker. `name` is a plain file name that no shard,
  // index or marker uses. FailedPrecondition for a single-file output.
  Status AddFile(std::string_view name, std::string_view contents);
  // Side files added so far, in order.
  const std::vector<std::string>& side_files() const { return side_files_; }

  Status Commit();
  void Abort();

 private:
  CheckpointWriter() = default;
  Status CommitDirectory();
  Status WriteMarker() const;
  Status ReplaceOccupiedDestination();

  std::filesystem::path path_;
  std::filesystem::path temporary_directory_;  // empty in single-file mode
  bool overwrite_ = false;
  std::vector<SafetensorsWriter> shards_;
  std::vector<std::string> file_names_;
  std::vector<std::string> side_files_;
  std::map<std::string, size_t, std::less<>> shard_of_;  // tensor name -> shards_ index
  uint64_t total_bytes_ = 0;
};

}  // namespace weightsync
