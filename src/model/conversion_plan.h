// Turns a model spec plus the names and shapes a source actually has into concrete
// ConversionSpecs: every destination tensor, what it is made of, in a deterministic order.
//
// Strict by design: a source tensor no rule consumes, a required destination that cannot be built
// for some layer, a rule whose first source exists but another does not, a gap in an expert stack:
// each is an error listing the names, because a silently skipped tensor is a silently stale weight.
#pragma once

#include <string>
#include <vector>

#include "model/model_spec.h"

namespace weightsync {

struct SourceTensorInfo {
  std::string name;
  Shape shape;
};

struct ConversionPlanOptions {
  std::string source_format = "hf";
  std::string target_format = "vllm";
  // ECMAScript regular expressions; a source name matching any of them (whole name) is skipped.
  std::vector<std::string> ignore;
  // Convert part of a model (one shard, a few layers): required destinations may be absent. A rule
  // whose first source is present still needs all its other sources.
  bool allow_partial = false;
};

struct ConversionPlan {
  std::vector<ConversionSpec> specs;  // ordered by layer, then by rule order in the spec
  std::vector<size_t> rules;          // rules[i]: index of the target rule that made specs[i]
  std::vector<std::string> ignored;   // source names skipped by an ignore pattern
};

Result<ConversionPlan> PlanConversion(const ModelSpec& model,
                                      const std::vector<SourceTensorInfo>& sources,
                                      const ConversionPlanOptions& options);

}  // namespace weightsync
