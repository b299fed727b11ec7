#include "io/json_util.h"

#include <set>
#include <string>
#include <vector>

namespace weightsync {

Result<nlohmann::json> ParseJsonRejectingDuplicateKeys(std::string_view text) {
  // One set of keys per open object; the parser callback sees every key before its value.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty() && parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  nlohmann::json value;
  try {  // the parser reports syntax errors only as exceptions; they stop here
    value = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss("not valid JSON: ", e.what());
  }
  if (!duplicate.empty()) return DataLoss("the key \"", duplicate, "\" appears twice in an object");
  return value;
}

}  // namespace weightsync
