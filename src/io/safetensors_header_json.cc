#include "io/safetensors_header_json.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_set>
#include <utility>

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

}  // namespace

Status ParseSafetensorsHeaderJson(std::span<const uint8_t> json,
                                  std::vector<SafetensorsTensorInfo>& tensors,
                                  SafetensorsMetadata& metadata) {
  HeaderSaxHandler handler;
  bool parsed = false;
  try {
    parsed = nlohmann::json::sax_parse(json.data(), json.data() + json.size(), &handler);
  } catch (const std::exception& e) {  // defensive: nlohmann reports through the handler
    return DataLoss("header is not valid JSON: ", e.what());
  }
  if (!parsed || !handler.status.ok()) {
    return handler.status.ok() ? DataLoss("header is not valid JSON") : handler.status;
  }
  tensors = std::move(handler.tensors);
  metadata = std::move(handler.metadata);
  return Status::Ok();
}

}  // namespace weightsync
