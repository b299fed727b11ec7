// The models/*.json files of the source tree, compiled into the library (generated at build time by
// cmake/EmbedModelSpecs.cmake) so the binary works without an installed data directory.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

namespace weightsync {

// (file name, file text) for every built-in model spec.
const std::vector<std::pair<std::string_view, std::string_view>>& BuiltinModelSpecs();

}  // namespace weightsync
