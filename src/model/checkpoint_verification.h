// Verification of a converted checkpoint against its source: the engine behind
// `weightsync verify`.
//
// Every destination tensor is converted again from the source (the same plan, the same reference
// conversion `convert` uses), one tensor at a time into memory, and compared byte for byte with
// the converted checkpoint's tensor. Memory: the largest destination tensor plus its scales.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/checkpoint_conversion.h"

namespace weightsync {

struct VerificationReport {
  int64_t tensors_compared = 0;  // destinations and scales present in both with equal shapes
  int64_t tensors_equal = 0;
  int64_t bytes_compared = 0;
  // One line per problem, naming the tensor: bytes that differ (how many, the first element's
  // coordinate), a dtype or shape that differs, a tensor missing from the output or not produced
  // by the conversion.
  std::vector<std::string> differences;

  bool ok() const { return differences.empty(); }
};

// `converted` is what `convert` wrote from `input` with these options (a file or a directory).
// Errors are for what stops the comparison (unreadable files, a source that does not convert);
// differences go into the report.
Result<VerificationReport> VerifyCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& converted,
                                            const ConversionPlanOptions& plan, int threads);

}  // namespace weightsync
