// Whether each inference GPU's share of the weights fits in its memory.
//
// The planner knows the bytes every inference rank holds (TransferPlan::inference_bytes); a share
// larger than the GPU's memory cannot load at all (DeepSeek-V3 at tp=8 holds 85 GB per GPU, more
// than an H100's 80 GB). An engine needs room beyond the weights too (KV cache, activations), so
// a share just below the memory can still fail to serve.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plan/transfer_plan.h"

namespace weightsync {

// "h100" (80 GB), "h200" (141 GB), or a size ("96GB", "80GiB"): bytes of one GPU's memory.
Result<int64_t> ParseGpuMemory(std::string_view text);
// The GPU names ParseGpuMemory knows, for help texts: "h100 (80 GB), h200 (141 GB)".
std::string KnownGpuMemoryText();

// The ranks of an inference engine (0 .. ranks-1) whose weights exceed `gpu_memory_bytes` on any
// replica, in order.
std::vector<int> InferenceRanksOverMemory(const TransferPlan& plan, int64_t gpu_memory_bytes);

// "0-3, 5, 7-8": for messages naming many ranks.
std::string RankRangesText(const std::vector<int>& ranks);

}  // namespace weightsync
