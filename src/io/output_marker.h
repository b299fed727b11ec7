// What marks a file or directory as weightsync's own output, so that overwriting replaces only
// what weightsync wrote (CheckpointWriter uses these; docs/safetensors.md describes the rule).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "weightsync/status.h"

namespace weightsync {

// The marker file of a directory output, and the __metadata__ entry of every file written.
inline constexpr std::string_view kOutputMarkerName = "weightsync-output.json";
inline constexpr std::string_view kWrittenByKey = "written_by";
inline constexpr std::string_view kWrittenByValue = "weightsync";

// The marker's text: {"written_by": "weightsync", "files": [...]}.
std::string OutputMarkerText(const std::vector<std::string>& files);

// Ok when `path` (which exists) may be replaced: a .safetensors file whose __metadata__ says
// weightsync wrote it, or a directory holding the marker and only files the marker lists.
// FailedPrecondition otherwise, naming the path and the first file weightsync did not write.
Status CheckReplaceable(const std::filesystem::path& path);

// Deletes a directory that CheckReplaceable accepted: the listed files and the marker, then the
// directory itself. A file that appeared since is kept, and so is the directory (the error names
// both).
Status RemoveMarkedDirectory(const std::filesystem::path& directory);

}  // namespace weightsync
