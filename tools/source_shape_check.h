// `convert`'s check of every source tensor's shape against the model's dimensions, before any
// output exists. It lives in tools/ because it joins two layers that may not depend on each other:
// the model specs (src/model: how the source format spells each tensor) and the model dimensions
// (src/plan: which tensors, of which shapes, a config.json implies).
#pragma once

#include <optional>
#include <string>

#include "model/checkpoint_conversion.h"

namespace weightsync::cli {

// With config.json's text (`origin` names the file): every tensor its dimensions imply (vocab,
// hidden, intermediate sizes, heads, experts, ...), spelled in `source_format`. A config the
// dimension reader does not support (Unimplemented) falls back to the check without one: the
// embedding must be 2D [vocab, hidden], and lm_head and the final norm must agree with it.
// Errors name each tensor, its shape and the expected shape (up to 10 of them).
Result<SourceCheck> SourceShapeCheck(const ModelSpec& model, const std::string& source_format,
                                     const std::optional<std::string>& config_text,
                                     const std::string& origin);

}  // namespace weightsync::cli
