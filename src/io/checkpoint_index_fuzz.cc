// libFuzzer target for the model.safetensors.index.json parser (built with
// -DWEIGHTSYNC_BUILD_FUZZ=ON, as safetensors_header_fuzz.cc describes):
//
//   ninja -C build-fuzz checkpoint_index_fuzz
//   cp -r src/io/testdata/checkpoint_index_corpus /tmp/corpus
//   build-fuzz/src/io/checkpoint_index_fuzz -max_total_time=60 /tmp/corpus
//
// The input is the index file's text.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/checkpoint_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto index = weightsync::ParseCheckpointIndex(text);
  if (!index.ok()) return 0;
  // Accepted indexes are what the reader relies on: files sorted and distinct, the weight_map
  // sorted by name with no name twice, every file id valid and every file used.
  if (!std::is_sorted(index->files.begin(), index->files.end())) __builtin_trap();
  if (std::adjacent_find(index->files.begin(), index->files.end()) != index->files.end()) {
    __builtin_trap();
  }
  std::vector<bool> used(index->files.size());
  for (size_t i = 0; i < index->weight_map.size(); ++i) {
    const auto& entry = index->weight_map[i];
    if (entry.file >= index->files.size()) __builtin_trap();
    if (i > 0 && !(index->weight_map[i - 1].tensor < entry.tensor)) __builtin_trap();
    if (index->FileOf(entry.tensor) != &index->files[entry.file]) __builtin_trap();
    used[entry.file] = true;
  }
  if (std::find(used.begin(), used.end(), false) != used.end()) __builtin_trap();
  return 0;
}
