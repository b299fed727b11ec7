// The bytes every inference rank must hold after a push: the full destination tensors converted
// directly from the full sources (the path `weightsync convert` takes: PlanConversion,
// ResolveConversion, ExecuteConversion), then cut to the rank's layout. This shares no code with
// the push path's units, slots, gathers and writes, so a layout, planning or transport bug shows
// up as a mismatch.
//
// Threading: Compute from one thread; Verify is const and may run concurrently.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "weightsync/tensor.h"

namespace weightsync::demo {

class ReferenceDestinations {
 public:
  static Result<ReferenceDestinations> Compute(const agent::JobPlan& job,
                                               const std::map<std::string, TensorView>& sources,
                                               int threads);

  // Compares every written byte of inference rank `rank`'s tensors with the reference (padding
  // rows are never written and not compared). Errors name the tensor, part, row and column.
  Status Verify(const agent::JobPlan& job, int rank,
                const std::map<std::string, TensorView>& actual) const;

 private:
  struct Full {
    std::vector<uint8_t> bytes;
    int64_t parts = 1, rows = 0, cols = 0, element = 1;
  };
  std::map<std::string, Full> full_;  // weight and scale tensors by name
};

}  // namespace weightsync::demo
