// demo_pattern.h's values generated on the GPU (for GPU demos and benchmarks, whose weights are
// too large to generate on the host and copy). kUnavailable in a build without CUDA.
#pragma once

#include <cstdint>

#include "weightsync/dtype.h"
#include "weightsync/status.h"

namespace weightsync::demo {

// Elements [first_element, first_element + count) of a tensor with `cols` columns into `data`
// (device memory on the current device, bf16 or fp32), for `step`. Waits for the kernel.
Status FillPatternOnDevice(void* data, DType dtype, int64_t count, int64_t first_element,
                           int64_t cols, uint64_t tensor_hash, uint64_t step);

}  // namespace weightsync::demo
