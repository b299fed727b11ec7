// Finding NaN and Inf in a weight before any of it is sent: a push must refuse bad weights before
// the first byte reaches an inference engine, not when the conversion of some late unit trips on
// them (by then earlier units are already written).
//
// Threading: pure functions.
#pragma once

#include <cstdint>

#include "weightsync/dtype.h"
#include "weightsync/status.h"

namespace weightsync {

// Index of the first NaN or +-Inf among `count` contiguous elements, or -1 when all are finite.
// Supported dtypes: bf16, fp16, fp32 (other dtypes have no NaN to find: -1).
int64_t FirstNonFinite(const void* data, DType dtype, int64_t count);

}  // namespace weightsync
