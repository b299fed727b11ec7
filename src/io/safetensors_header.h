// The safetensors header: parsing with strict validation, and serialization for the writer.
//
// A safetensors file is an 8-byte little-endian length N, N bytes of UTF-8 JSON, then the data
// region. The JSON maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data region) plus an optional "__metadata__" object of string -> string.
//
// The parser treats every byte as hostile: it never crashes, allocates at most in proportion to
// the header, and returns a DataLoss status naming the tensor for anything the reference
// implementation (the Rust `safetensors` crate behind the Python package) would refuse, plus a
// few things it lets through (duplicate keys, unknown tensor fields). See docs/safetensors.md.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "weightsync/dtype.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"

namespace weightsync {

inline constexpr uint64_t kSafetensorsLengthPrefixSize = 8;
// The reference implementation's limit (100 MiB); not configurable.
inline constexpr uint64_t kDefaultMaxSafetensorsHeaderSize = 100ull << 20;
// No real model has rank above 5 or so; the bound keeps element-count arithmetic trivially safe.
inline constexpr size_t kMaxSafetensorsRank = 8;

using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data region
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
  bool operator==(const SafetensorsTensorInfo&) const = default;
};

struct SafetensorsHeader {
  uint64_t header_length = 0;  // N, the JSON length including any padding
  uint64_t data_size = 0;      // bytes of the data region: file size - 8 - N
  // Sorted by data offset: the order the bytes lie in the file (ties keep header order).
  std::vector<SafetensorsTensorInfo> tensors;
  SafetensorsMetadata metadata;

  uint64_t data_offset() const { return kSafetensorsLengthPrefixSize + header_length; }
};

// Reads and checks the length prefix: N must not exceed max_header_size nor the file.
// `prefix` holds at least the first 8 bytes of the file.
Result<uint64_t> ReadSafetensorsHeaderLength(std::span<const uint8_t> prefix, uint64_t file_size,
                                             uint64_t max_header_size);

// Parses and validates the header of a file of `file_size` bytes. `file_prefix` holds the file's
// first bytes, at least 8 + N of them (the whole file is fine). Errors do not name the file; the
// caller adds it with Status::WithContext.
Result<SafetensorsHeader> ParseSafetensorsHeader(
    std::span<const uint8_t> file_prefix, uint64_t file_size,
    uint64_t max_header_size = kDefaultMaxSafetensorsHeaderSize);

// Bytes of a contiguous tensor, or an error when the element count or byte size overflows.
Result<uint64_t> SafetensorsTensorBytes(std::string_view name, DType dtype, const Shape& shape);

// The length prefix and JSON for `tensors` (whose offsets the caller has laid out), padded with
// spaces so the data region starts at a multiple of 8, as the reference writer does. Tensors are
// written in the given order; metadata is omitted when empty. Refuses names that are not valid
// UTF-8, the reserved name "__metadata__", duplicates, and metadata that is not valid UTF-8.
Result<std::string> SerializeSafetensorsHeader(std::span<const SafetensorsTensorInfo> tensors,
                                               const SafetensorsMetadata& metadata);

}  // namespace weightsync
