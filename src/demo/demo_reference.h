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
#include "convert/conversion_spec.h"
#include "weightsync/tensor.h"

namespace weightsync::demo {

class ReferenceDestinations {
 public:
  static Result<ReferenceDestinations> Compute(const agent::JobPlan& job,
                                               const std::map<std::string, TensorView>& sources,
                                               int threads);

  // The same, converted on the current CUDA device by the CUDA kernels (bit-exact with the scalar
  // reference, convert_gpu_test) from full sources in device memory, then copied to the host.
  static Result<ReferenceDestinations> ComputeOnDevice(
      const agent::JobPlan& job, const std::map<std::string, TensorView>& device_sources);

  // Compares every written byte of inference rank `rank`'s tensors with the reference (padding
  // rows are never written and not compared). Errors name the tensor, part, row and column.
  Status Verify(const agent::JobPlan& job, int rank,
                const std::map<std::string, TensorView>& actual) const;

 private:
  struct Full {
    std::vector<uint8_t> bytes;
    int64_t parts = 1, rows = 0, cols = 0, element = 1;
  };
  // The conversion specs of the job's target format, resolved against `sources`.
  static Result<std::vector<ResolvedConversion>> Resolve(
      const agent::JobPlan& job, const std::map<std::string, TensorView>& sources);
  // Records a destination's shape and allocates its host bytes (and its scale's).
  std::pair<Full*, Full*> Prepare(const ResolvedConversion& resolved);

  std::map<std::string, Full> full_;  // weight and scale tensors by name
};

}  // namespace weightsync::demo
