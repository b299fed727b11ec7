#include "io/checkpoint_index.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace weightsync {
namespace {

constexpr size_t kMaxDepth = 64;

// Where a value sits: the root object, its "metadata" or "weight_map", a nested metadata value
// being re-serialized, or a part the reader does not use.
enum class Place { kRoot, kMetadata, kWeightMap, kCapture, kSkip };
enum class Kind { kScalar, kNull, kString, kObject, kArray };

class IndexSaxHandler final : public nlohmann::json_sax<nlohmann::json> {
 public:
  Status status;
  CheckpointIndex index;  // file ids in first-seen order until Finish()

  bool null() override { return Value(Kind::kNull, "null"); }
  bool boolean(bool value) override { return Scalar(value ? "true" : "false"); }
  bool number_integer(number_integer_t value) override { return Scalar(std::to_string(value)); }
  bool number_unsigned(number_unsigned_t value) override { return Scalar(std::to_string(value)); }
  bool number_float(number_float_t, const string_t& text) override { return Scalar(text); }
  bool binary(binary_t&) override { return Fail("binary data"); }  // JSON text has none
  bool string(string_t& value) override;
  bool start_object(std::size_t) override { return Open(/*object=*/true); }
  bool start_array(std::size_t) override { return Open(/*object=*/false); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool key(string_t& key) override;
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) override {
    return Fail(StrCat("not valid JSON: ", e.what()));
  }

  Status Finish();

 private:
  struct Frame {
    Place place;
    bool object;
    bool empty = true;           // nothing captured in it yet (commas)
    std::set<std::string> keys;  // duplicate detection, except in weight_map and skipped parts
  };

  bool Fail(std::string message) {
    if (status.ok()) status = DataLoss(std::move(message));
    return false;
  }
  // Called for every value (text: a scalar's JSON text) and before every container's contents.
  bool Value(Kind kind, const std::string& text);
  bool Scalar(const std::string& text) { return Value(Kind::kScalar, text); }
  bool Open(bool object);
  bool Close();
  void CaptureSeparator();

  std::vector<Frame> frames_;
  std::string key_;          // the key the next value belongs to
  std::string capture_;      // a nested metadata value, as JSON text
  std::string capture_key_;  // the metadata key it belongs to
  std::map<std::string, uint32_t, std::less<>> file_ids_;
  bool saw_weight_map_ = false;
};

// Array elements are separated by commas; in objects key() writes them.
void IndexSaxHandler::CaptureSeparator() {
  Frame& frame = frames_.back();
  if (frame.object) return;
  if (!frame.empty) capture_ += ',';
  frame.empty = false;
}

bool IndexSaxHandler::Value(Kind kind, const std::string& text) {
  const bool container = kind == Kind::kObject || kind == Kind::kArray;
  if (frames_.empty()) return kind == Kind::kObject ? true : Fail("not a JSON object");
  switch (frames_.back().place) {
    case Place::kRoot:
      if (key_ == "metadata" && kind != Kind::kObject && kind != Kind::kNull) {
        return Fail("\"metadata\" is not an object");
      }
      if (key_ == "weight_map" && kind != Kind::kObject) {
        return Fail("needs a \"weight_map\" object of tensor name -> file name");
      }
      return true;
    case Place::kMetadata:
      if (container) {
        capture_key_ = key_;
        capture_.clear();
      } else {
        index.metadata[key_] = text;
      }
      return true;
    case Place::kWeightMap:
      return Fail(StrCat("tensor \"", key_, "\": file is not a string"));
    case Place::kCapture:
      CaptureSeparator();
      capture_ += text;
      return true;
    case Place::kSkip:
      return true;
  }
  return true;
}

bool IndexSaxHandler::string(string_t& value) {
  if (!frames_.empty() && frames_.back().place == Place::kWeightMap) {
    auto [it, inserted] = file_ids_.try_emplace(std::move(value), 0);
    if (inserted) {
      it->second = static_cast<uint32_t>(index.files.size());
      index.files.push_back(it->first);
    }
    index.weight_map.push_back({std::move(key_), it->second});
    return true;
  }
  if (!frames_.empty() && frames_.back().place == Place::kMetadata) {
    index.metadata[key_] = std::move(value);
    return true;
  }
  return Value(Kind::kString, nlohmann::json(value).dump());
}

bool IndexSaxHandler::Open(bool object) {
  if (frames_.size() >= kMaxDepth) return Fail(StrCat("nested deeper than ", kMaxDepth, " levels"));
  if (!Value(object ? Kind::kObject : Kind::kArray, "")) return false;
  Place place = Place::kSkip;
  if (frames_.empty()) {
    place = Place::kRoot;
  } else {
    switch (frames_.back().place) {
      case Place::kRoot:
        place = key_ == "metadata"     ? Place::kMetadata
                : key_ == "weight_map" ? Place::kWeightMap
                                       : Place::kSkip;
        break;
      case Place::kMetadata:
      case Place::kCapture:
        place = Place::kCapture;
        break;
      case Place::kWeightMap:
      case Place::kSkip:
        break;
    }
  }
  if (place == Place::kCapture) capture_ += object ? '{' : '[';
  if (place == Place::kWeightMap) saw_weight_map_ = true;
  frames_.push_back({place, object, true, {}});
  return true;
}

bool IndexSaxHandler::Close() {
  const Frame frame = std::move(frames_.back());
  frames_.pop_back();
  if (frame.place != Place::kCapture) return true;
  capture_ += frame.object ? '}' : ']';
  if (frames_.back().place == Place::kMetadata) index.metadata[capture_key_] = capture_;
  return true;
}

bool IndexSaxHandler::key(string_t& key) {
  Frame& frame = frames_.back();
  if (frame.place != Place::kWeightMap && frame.place != Place::kSkip &&
      !frame.keys.insert(key).second) {
    return Fail(StrCat("the key \"", key, "\" appears twice in an object"));
  }
  if (frame.place == Place::kCapture) {
    if (!frame.empty) capture_ += ',';
    frame.empty = false;
    capture_ += nlohmann::json(key).dump() + ":";
  }
  key_ = std::move(key);
  return true;
}

// Sorts the files and the weight_map, and finds names listed twice.
Status IndexSaxHandler::Finish() {
  if (!status.ok()) return status;
  if (!saw_weight_map_)
    return DataLoss("needs a \"weight_map\" object of tensor name -> file name");
  std::vector<uint32_t> new_id(index.files.size());
  std::sort(index.files.begin(), index.files.end());
  for (const auto& [name, old_id] : file_ids_) {
    new_id[old_id] = static_cast<uint32_t>(
        std::lower_bound(index.files.begin(), index.files.end(), name) - index.files.begin());
  }
  for (CheckpointIndex::Entry& entry : index.weight_map) entry.file = new_id[entry.file];
  std::sort(index.weight_map.begin(), index.weight_map.end(),
            [](const auto& a, const auto& b) { return a.tensor < b.tensor; });
  auto twice =
      std::adjacent_find(index.weight_map.begin(), index.weight_map.end(),
                         [](const auto& a, const auto& b) { return a.tensor == b.tensor; });
  if (twice != index.weight_map.end()) {
    return DataLoss("the key \"", twice->tensor, "\" appears twice in an object");
  }
  return Status::Ok();
}

}  // namespace

const std::string* CheckpointIndex::FileOf(std::string_view tensor) const {
  auto it = std::lower_bound(
      weight_map.begin(), weight_map.end(), tensor,
      [](const Entry& entry, std::string_view name) { return entry.tensor < name; });
  if (it == weight_map.end() || it->tensor != tensor) return nullptr;
  return &files[it->file];
}

Result<CheckpointIndex> ParseCheckpointIndex(std::string_view text) {
  // nlohmann's lexer takes a NUL byte for the end of the input and would ignore what follows.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return DataLoss("not valid JSON: a NUL byte at offset ", nul);
  }
  IndexSaxHandler handler;
  nlohmann::json::sax_parse(text.begin(), text.end(), &handler);
  WS_RETURN_IF_ERROR(handler.Finish());
  return std::move(handler.index);
}

}  // namespace weightsync
