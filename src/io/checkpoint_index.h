// model.safetensors.index.json: {"metadata": {...}, "weight_map": {"tensor": "file", ...}}.
//
// Parsed by a SAX handler that keeps only what the reader needs (the weight_map as sorted
// (tensor, file id) pairs with each file name stored once, and the metadata) instead of a JSON
// document: peak memory is about twice the file's size, not dozens of times. Other top-level keys
// are skipped. Duplicate keys are errors (nlohmann's DOM would keep the last one silently).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "weightsync/status.h"

namespace weightsync {

struct CheckpointIndex {
  struct Entry {
    std::string tensor;
    uint32_t file = 0;  // index into files
  };
  // The "metadata" object: strings as they are, other values in their JSON form.
  std::map<std::string, std::string> metadata;
  std::vector<std::string> files;  // distinct file names, sorted
  std::vector<Entry> weight_map;   // sorted by tensor name, each name once

  // The file listed for `tensor`, or nullptr.
  const std::string* FileOf(std::string_view tensor) const;
};

// DataLoss naming the problem (the caller adds the file's path): not JSON, not an object, no
// weight_map object, a file that is not a string, a key given twice, nesting deeper than 64.
Result<CheckpointIndex> ParseCheckpointIndex(std::string_view text);

}  // namespace weightsync
