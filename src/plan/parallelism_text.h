// Parallelism written as text, as the CLI flags, the C API and the Python package take it:
//   trainer:   "fsdp=64,ep=8,hsdp=1,senders=replica0|all"
//   inference: "tp=1,dp=16,ep=16,replicas=2,placement=linear|round_robin" (ep = tp x dp)
// Errors name the flag and the bad item.
//
// Threading: pure functions.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "plan/layout.h"

namespace weightsync {

Result<TrainerParallelism> ParseTrainerParallelism(std::string_view text);
Result<InferenceParallelism> ParseInferenceParallelism(std::string_view text);

// "a=1,b=two" -> {a: 1, b: two}; every key must be one of `keys`; `what` names the flag in errors.
Result<std::map<std::string, std::string>> ParseKeyValueList(
    std::string_view text, std::string_view what, std::initializer_list<std::string_view> keys);
// The positive count at `key` (fallback when absent), at most 2^20.
Result<int> CountIn(const std::map<std::string, std::string>& values, const std::string& key,
                    int fallback, std::string_view what);

}  // namespace weightsync
