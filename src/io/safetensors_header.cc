#include "io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "io/safetensors_header_json.h"
#include "io/utf8.h"

namespace weightsync {
namespace {

constexpr std::string_view kMetadataKey = "__metadata__";

// Offsets inside the data region, sizes matching shapes, and the region covered exactly once:
// the reference refuses gaps and trailing bytes too, so files we accept load everywhere.
Status ValidateLayout(std::vector<SafetensorsTensorInfo>& tensors, uint64_t data_size) {
  for (const SafetensorsTensorInfo& t : tensors) {
    if (t.begin > t.end) {
      return DataLoss("tensor \"", t.name, "\": data_offsets [", t.begin, ", ", t.end,
                      "] end before they begin");
    }
    if (t.end > data_size) {
      return DataLoss("tensor \"", t.name, "\": data_offsets [", t.begin, ", ", t.end,
                      "] run past the data region of ", data_size, " bytes");
    }
    WS_ASSIGN_OR_RETURN(uint64_t expected, SafetensorsTensorBytes(t.name, t.dtype, t.shape));
    if (t.nbytes() != expected) {
      return DataLoss("tensor \"", t.name, "\": ", DTypeSafetensorsName(t.dtype),
                      ShapeToString(t.shape), " needs ", expected, " bytes but data_offsets [",
                      t.begin, ", ", t.end, "] hold ", t.nbytes());
    }
  }
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensorInfo& t = tensors[i];
    if (t.begin < covered) {
      return DataLoss("tensor \"", t.name, "\": bytes [", t.begin, ", ", t.end,
                      ") overlap tensor \"", tensors[i - 1].name, "\"");
    }
    if (t.begin > covered) {
      return DataLoss("tensor \"", t.name, "\": starts at ", t.begin, " leaving bytes [", covered,
                      ", ", t.begin, ") of the data region unused");
    }
    covered = t.end;
  }
  if (covered != data_size) {
    return DataLoss("data region has ", data_size - covered,
                    " bytes after the last tensor that no tensor describes");
  }
  return Status::Ok();
}

void AppendJsonString(std::string& out, std::string_view utf8) {
  out += nlohmann::json(std::string(utf8)).dump();  // valid UTF-8 was checked: cannot throw
}

}  // namespace

Result<uint64_t> ReadSafetensorsHeaderLength(std::span<const uint8_t> prefix, uint64_t file_size,
                                             uint64_t max_header_size) {
  if (file_size < kSafetensorsLengthPrefixSize || prefix.size() < kSafetensorsLengthPrefixSize) {
    return DataLoss("file is ", file_size, " bytes, too short for the 8-byte header length");
  }
  uint64_t length = 0;
  for (size_t i = 0; i < kSafetensorsLengthPrefixSize; ++i) {
    length |= static_cast<uint64_t>(prefix[i]) << (8 * i);
  }
  if (length > max_header_size) {
    return DataLoss("header length ", length, " exceeds the limit of ", max_header_size, " bytes");
  }
  if (length > file_size - kSafetensorsLengthPrefixSize) {
    return DataLoss("header length ", length, " runs past the end of the ", file_size,
                    "-byte file (truncated?)");
  }
  return length;
}

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> file_prefix,
                                                 uint64_t file_size, uint64_t max_header_size) {
  WS_ASSIGN_OR_RETURN(uint64_t length,
                      ReadSafetensorsHeaderLength(file_prefix, file_size, max_header_size));
  if (file_prefix.size() - kSafetensorsLengthPrefixSize < length) {
    return InvalidArgument("the header needs ", kSafetensorsLengthPrefixSize + length,
                           " bytes of the file but only ", file_prefix.size(), " were given");
  }
  const uint8_t* json_begin = file_prefix.data() + kSafetensorsLengthPrefixSize;
  // nlohmann's lexer takes a NUL byte for the end of input, which would let "{}\0garbage" pass.
  // JSON never contains a raw NUL (not even inside strings), so refuse it outright.
  if (const void* nul = std::memchr(json_begin, 0, length)) {
    return DataLoss("header is not valid JSON: NUL byte at byte ",
                    static_cast<const uint8_t*>(nul) - json_begin);
  }
  SafetensorsHeader header;
  header.header_length = length;
  header.data_size = file_size - kSafetensorsLengthPrefixSize - length;
  WS_RETURN_IF_ERROR(
      ParseSafetensorsHeaderJson(std::span(json_begin, length), header.tensors, header.metadata));
  WS_RETURN_IF_ERROR(ValidateLayout(header.tensors, header.data_size));
  return header;
}

Result<uint64_t> SafetensorsTensorBytes(std::string_view name, DType dtype, const Shape& shape) {
  constexpr uint64_t kMaxElements = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t elements = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return InvalidArgument("tensor \"", name, "\": negative dimension ", dim);
    uint64_t d = static_cast<uint64_t>(dim);
    // The running product is checked like the reference's checked_mul, so numel() fits int64.
    if (d != 0 && elements > kMaxElements / d) {
      return DataLoss("tensor \"", name, "\": shape ", ShapeToString(shape),
                      " has more elements than fit in 63 bits");
    }
    elements *= d;
  }
  uint64_t element_size = DTypeSize(dtype);
  if (elements > std::numeric_limits<uint64_t>::max() / element_size) {
    return DataLoss("tensor \"", name, "\": shape ", ShapeToString(shape),
                    " has more bytes than fit in 64 bits");
  }
  return elements * element_size;
}

Result<std::string> SerializeSafetensorsHeader(std::span<const SafetensorsTensorInfo> tensors,
                                               const SafetensorsMetadata& metadata) {
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
        return InvalidArgument("metadata entry \"", key, "\" is not valid UTF-8");
      }
      if (!first) json += ',';
      first = false;
      AppendJsonString(json, key);
      json += ':';
      AppendJsonString(json, value);
    }
    json += "},";
  }
  std::unordered_set<std::string_view> names;
  for (const SafetensorsTensorInfo& t : tensors) {
    if (!IsValidUtf8(t.name)) return InvalidArgument("tensor name is not valid UTF-8");
    if (t.name == kMetadataKey) return InvalidArgument("tensor name \"__metadata__\" is reserved");
    if (!names.insert(t.name).second) return InvalidArgument("tensor \"", t.name, "\" twice");
    if (t.shape.size() > kMaxSafetensorsRank) {
      return InvalidArgument("tensor \"", t.name, "\": rank above ", kMaxSafetensorsRank);
    }
    AppendJsonString(json, t.name);
    json += StrCat(":{\"dtype\":\"", DTypeSafetensorsName(t.dtype), "\",\"shape\":[");
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] < 0) return InvalidArgument("tensor \"", t.name, "\": negative dimension");
      json += StrCat(i ? "," : "", t.shape[i]);
    }
    json += StrCat("],\"data_offsets\":[", t.begin, ",", t.end, "]},");
  }
  if (json.back() == ',') json.pop_back();
  json += '}';
  // Pad so the data region starts 8-aligned: every tensor then sits at its dtype's alignment
  // as long as the layout keeps offsets aligned too.
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(kSafetensorsLengthPrefixSize, '\0');
  for (size_t i = 0; i < kSafetensorsLengthPrefixSize; ++i) {
    out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  }
  return out + json;
}

}  // namespace weightsync
