// Where an output may go relative to its input: never onto it, into it, or around it.
//
// A conversion that writes over its own input destroys the only copy of the weights (and
// replacing a directory deletes the other files in it), so the output is refused when, after
// resolving symbolic links, it is the input, lies inside the input directory, contains the input,
// or is or contains one of the input's files (which may live elsewhere: the Hugging Face cache
// links snapshot files to ../../blobs/).
#pragma once

#include <filesystem>

#include "io/checkpoint.h"
#include "weightsync/status.h"

namespace weightsync {

// InvalidArgument naming both paths (and the resolved ones where links were followed).
Status CheckOutputApartFromInput(const std::filesystem::path& output, const Checkpoint& input);

}  // namespace weightsync
