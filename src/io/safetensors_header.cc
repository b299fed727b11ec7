#include "io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "io/utf8.h"

namespace weightsync {
namespace {

constexpr std::string_view kMetadataKey = "__metadata__";

// A SAX handler that accepts exactly the safetensors schema and nothing else. Going through SAX
// rather than a DOM lets us see duplicate keys (the DOM parser silently keeps the last one), stops
// at the first deviation, and never builds nesting deeper than the schema's three levels.
class HeaderSaxHandler final : public nlohmann::json_sax<nlohmann::json> {
 public:
  Status status;
  std::vector<SafetensorsTensorInfo> tensors;  // header order
  SafetensorsMetadata metadata;

  bool null() override {
    if (expect_ == Expect::kRootValueMetadata) {  // the reference accepts "__metadata__": null
      expect_ = Expect::kRootKey;
      return true;
    }
    return Unexpected("null");
  }
  bool boolean(bool) override { return Unexpected("a boolean"); }
  bool number_integer(number_integer_t value) override {
    // nlohmann reports non-negative integers through number_unsigned, so this is negative.
    if (expect_ == Expect::kShapeItem) return Fail("negative dimension ", value, " in shape");
    if (expect_ == Expect::kOffsetsItem) return Fail("negative data offset ", value);
    return Unexpected("a negative integer");
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (expect_ == Expect::kShapeItem) {
      if (current_.shape.size() >= kMaxSafetensorsRank) {
        return Fail("shape has more than ", kMaxSafetensorsRank, " dimensions");
      }
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Fail("dimension ", value, " is too large");
      }
      current_.shape.push_back(static_cast<int64_t>(value));
      return true;
    }
    if (expect_ == Expect::kOffsetsItem) {
      if (offsets_seen_ >= 2) return Fail("data_offsets has more than 2 entries");
      (offsets_seen_ == 0 ? current_.begin : current_.end) = value;
      ++offsets_seen_;
      return true;
    }
    return Unexpected("a number");
  }
  bool number_float(number_float_t, const string_t& text) override {
    return Unexpected(StrCat("the number ", text, " (only non-negative integers below 2^64 fit)"));
  }
  bool binary(binary_t&) override { return Unexpected("binary data"); }

  bool string(string_t& value) override {
    if (expect_ == Expect::kDType) {
      std::optional<DType> dtype = DTypeFromSafetensorsName(value);
      if (!dtype) return Fail("unknown dtype \"", value, "\"");
      current_.dtype = *dtype;
      expect_ = Expect::kTensorKey;
      return true;
    }
    if (expect_ == Expect::kMetadataValue) {
      metadata.emplace(std::move(metadata_key_), std::move(value));
      expect_ = Expect::kMetadataName;
      return true;
    }
    return Unexpected("a string");
  }

  bool start_object(std::size_t) override {
    switch (expect_) {
      case Expect::kRoot:
        expect_ = Expect::kRootKey;
        return true;
      case Expect::kRootValueMetadata:
        expect_ = Expect::kMetadataName;
        return true;
      case Expect::kRootValueTensor:
        fields_seen_ = 0;
        expect_ = Expect::kTensorKey;
        return true;
      default:
        return Unexpected("an object");
    }
  }

  bool key(string_t& key) override {
    switch (expect_) {
      case Expect::kRootKey:
        if (!root_keys_.insert(key).second) return Fail("the name \"", key, "\" appears twice");
        if (key == kMetadataKey) {
          expect_ = Expect::kRootValueMetadata;
        } else {
          current_ = SafetensorsTensorInfo{};
          current_.name = std::move(key);
          expect_ = Expect::kRootValueTensor;
        }
        return true;
      case Expect::kMetadataName:
        if (metadata.contains(key)) return Fail("metadata key \"", key, "\" appears twice");
        metadata_key_ = std::move(key);
        expect_ = Expect::kMetadataValue;
        return true;
      case Expect::kTensorKey:
        return TensorField(key);
      default:
        return Unexpected("a key");  // unreachable: keys only follow object starts
    }
  }

  bool end_object() override {
    switch (expect_) {
      case Expect::kRootKey:
        expect_ = Expect::kDone;
        return true;
      case Expect::kMetadataName:
        expect_ = Expect::kRootKey;
        return true;
      case Expect::kTensorKey:
        if (fields_seen_ != kAllFields) {
          return Fail("needs \"dtype\", \"shape\" and \"data_offsets\"");
        }
        tensors.push_back(std::move(current_));
        expect_ = Expect::kRootKey;
        return true;
      default:
        return Unexpected("the end of an object");
    }
  }

  bool start_array(std::size_t) override {
    if (expect_ == Expect::kShapeStart) {
      expect_ = Expect::kShapeItem;
      return true;
    }
    if (expect_ == Expect::kOffsetsStart) {
      offsets_seen_ = 0;
      expect_ = Expect::kOffsetsItem;
      return true;
    }
    return Unexpected("an array");
  }

  bool end_array() override {
    if (expect_ == Expect::kShapeItem) {
      expect_ = Expect::kTensorKey;
      return true;
    }
    if (expect_ == Expect::kOffsetsItem) {
      if (offsets_seen_ != 2) return Fail("data_offsets needs exactly 2 entries [begin, end]");
      expect_ = Expect::kTensorKey;
      return true;
    }
    return Unexpected("the end of an array");
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& error) override {
    if (status.ok())
      status = DataLoss("header is not valid JSON at byte ", position, ": ", error.what());
    return false;
  }

 private:
  enum class Expect {
    kRoot,
    kRootKey,
    kRootValueMetadata,
    kRootValueTensor,
    kMetadataName,
    kMetadataValue,
    kTensorKey,
    kDType,
    kShapeStart,
    kShapeItem,
    kOffsetsStart,
    kOffsetsItem,
    kDone,
  };
  static constexpr unsigned kDTypeField = 1, kShapeField = 2, kOffsetsField = 4;
  static constexpr unsigned kAllFields = kDTypeField | kShapeField | kOffsetsField;

  bool TensorField(std::string_view field) {
    unsigned bit = 0;
    Expect next = Expect::kDone;
    if (field == "dtype") {
      bit = kDTypeField, next = Expect::kDType;
    } else if (field == "shape") {
      bit = kShapeField, next = Expect::kShapeStart;
    } else if (field == "data_offsets") {
      bit = kOffsetsField, next = Expect::kOffsetsStart;
    } else {
      return Fail("unknown field \"", field, "\"");
    }
    if (fields_seen_ & bit) return Fail("field \"", field, "\" appears twice");
    fields_seen_ |= bit;
    expect_ = next;
    return true;
  }

  // Where the parser is, for messages: "tensor x", "__metadata__" or "header".
  std::string Where() const {
    switch (expect_) {
      case Expect::kMetadataName:
      case Expect::kMetadataValue:
      case Expect::kRootValueMetadata:
        return std::string(kMetadataKey);
      case Expect::kRoot:
      case Expect::kRootKey:
      case Expect::kDone:
        return "header";
      default:
        return StrCat("tensor \"", current_.name, "\"");
    }
  }

  template <typename... Parts>
  bool Fail(const Parts&... parts) {
    status = DataLoss(Where(), ": ", parts...);
    return false;
  }
  bool Unexpected(std::string_view what) {
    static constexpr std::string_view kWanted[] = {
        "a JSON object",         "a tensor name",        "an object of strings or null",
        "a tensor object",       "a metadata key",       "a string value",
        "a tensor field",        "a dtype string",       "a shape array",
        "a dimension",           "a [begin, end] array", "an offset",
        "the end of the header",
    };
    return Fail("expected ", kWanted[static_cast<int>(expect_)], ", found ", what);
  }

  Expect expect_ = Expect::kRoot;
  SafetensorsTensorInfo current_;
  unsigned fields_seen_ = 0;
  int offsets_seen_ = 0;
  std::string metadata_key_;
  std::unordered_set<std::string> root_keys_;
};

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
    return DataLoss("header length ", length, " exceeds the limit of ", max_header_size,
                    " bytes (io.max_header_size)");
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
  HeaderSaxHandler handler;
  bool parsed = false;
  try {
    parsed = nlohmann::json::sax_parse(json_begin, json_begin + length, &handler);
  } catch (const std::exception& e) {  // defensive: nlohmann reports through the handler
    return DataLoss("header is not valid JSON: ", e.what());
  }
  if (!parsed || !handler.status.ok()) {
    return handler.status.ok() ? DataLoss("header is not valid JSON") : handler.status;
  }
  SafetensorsHeader header;
  header.header_length = length;
  header.data_size = file_size - kSafetensorsLengthPrefixSize - length;
  header.tensors = std::move(handler.tensors);
  header.metadata = std::move(handler.metadata);
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
