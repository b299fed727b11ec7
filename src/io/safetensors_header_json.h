// The JSON half of safetensors header parsing: a SAX handler that accepts exactly the schema.
// Internal to src/io; use ParseSafetensorsHeader (safetensors_header.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/safetensors_header.h"
#include "weightsync/status.h"

namespace weightsync {

// Parses the header JSON (no NUL bytes: the caller checks) into tensors, in header order, and
// metadata. Checks the schema, names, dtypes, ranks and key uniqueness; not the offsets.
Status ParseSafetensorsHeaderJson(std::span<const uint8_t> json,
                                  std::vector<SafetensorsTensorInfo>& tensors,
                                  SafetensorsMetadata& metadata);

}  // namespace weightsync
