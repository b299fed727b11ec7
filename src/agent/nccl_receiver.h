// An inference rank's side of the NCCL transfer mode (nccl_mode.h): receive buffers for every full
// source tensor, and the conversion of the received tensors into this rank's registered tensors.
//
// A destination this rank holds whole (tp = 1, replicated tensors, its own experts) is converted
// straight into its registered tensor. A tensor-parallel slice is converted as the full tensor
// (this rank's experts only) into scratch memory, and the rank's rows and columns (and the
// matching scale blocks) are copied out, as a vLLM weight loader narrows a full tensor.
//
// The plan of that work (ReceivePlan) holds only addresses, so the same plan runs on a GPU (the
// agent) or on the CPU (its test against the demo's independent reference).
//
// Threading: one thread (the agent's push thread).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "agent/nccl_mode.h"
#include "agent/unit_converter.h"
#include "control/deadline.h"
#include "convert/conversion_spec.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

struct ReceivePlan {
  // One converter launch, then the copies of slices out of scratch (none for whole tensors).
  struct Batch {
    std::vector<ConvertJob> jobs;
    std::vector<StridedCopy> copies;
  };
  std::deque<ResolvedConversion> resolved;  // the jobs' strings point into these: never moved
  std::vector<Batch> batches;               // in order: a batch may reuse the scratch of the last
};

// Plans inference rank `rank`'s conversion of the full `sources` (by name) into `destinations`
// (its registered tensors). `allocate_scratch(bytes)` is called once, when slices need scratch.
Result<ReceivePlan> PlanReceive(const JobPlan& job, int rank,
                                const std::map<std::string, TensorView>& sources,
                                const std::map<std::string, TensorView>& destinations,
                                const std::function<Result<void*>(int64_t)>& allocate_scratch);

class NcclReceiver {
 public:
  static Result<std::unique_ptr<NcclReceiver>> Create(
      const JobPlan& job, int rank, const std::map<std::string, TensorView>& destinations,
      int device);
  ~NcclReceiver();
  NcclReceiver(const NcclReceiver&) = delete;
  NcclReceiver& operator=(const NcclReceiver&) = delete;

  // Receives every bucket of full source tensors from trainer 0 over `broadcast`.
  Status Receive(NcclCommunicator& broadcast, control::Deadline deadline);
  // Converts the received sources into the registered tensors, and waits.
  Status Convert();

  struct Work;

 private:
  NcclReceiver() = default;
  std::vector<TensorView> buffers_;  // one per job source, in source order
  std::vector<std::vector<size_t>> buckets_;
  std::unique_ptr<Work> work_;
};

}  // namespace weightsync::agent
