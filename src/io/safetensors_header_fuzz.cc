// libFuzzer target for the safetensors header parser (built with -DWEIGHTSYNC_BUILD_FUZZ=ON).
//
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DWEIGHTSYNC_BUILD_FUZZ=ON \
//       -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF
//   ninja -C build-fuzz safetensors_header_fuzz
//   build-fuzz/src/io/safetensors_header_fuzz -max_total_time=60 corpus/
//
// The input is a whole file. A small header limit keeps each run fast without losing coverage.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> file(data, size);
  auto header = weightsync::ParseSafetensorsHeader(file, size, /*max_header_size=*/1 << 16);
  if (header.ok()) {
    // Accepted headers must describe the file exactly: re-serializing must succeed and the
    // tensors must tile the data region.
    uint64_t covered = 0;
    for (const auto& tensor : header->tensors) {
      if (tensor.begin != covered) __builtin_trap();
      covered = tensor.end;
    }
    if (covered != header->data_size) __builtin_trap();
    if (header->data_offset() + header->data_size != size) __builtin_trap();
  }
  // Also exercise the prefix-only path: the header alone, with the file claimed larger.
  if (size >= 8) {
    auto again = weightsync::ParseSafetensorsHeader(file, size + 1, 1 << 16);
    (void)again;
  }
  return 0;
}
