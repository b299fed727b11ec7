// Strict JSON parsing for small side files (model.safetensors.index.json).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync {

// Parses `text` as one JSON value. Unlike nlohmann::json::parse, a key repeated within one object
// is an error (the default keeps the last one silently), and no exception escapes.
Result<nlohmann::json> ParseJsonRejectingDuplicateKeys(std::string_view text);

}  // namespace weightsync
