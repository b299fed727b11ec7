// An inference rank's side of the NCCL transfer mode (nccl_mode.h): receive buffers for every full
// source tensor, and the conversion of the received tensors into this rank's registered tensors.
//
// A destination this rank holds whole (tp = 1, replicated tensors, its own experts) is converted
// straight into its registered tensor. A tensor-parallel slice is converted as the full tensor
// (this rank's experts only) into scratch memory, and the rank's rows and columns (and the
// matching scale blocks) are copied out, as a vLLM weight loader narrows a full tensor.
//
// Threading: one thread (the agent's push thread).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "agent/nccl_mode.h"
#include "control/deadline.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

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
