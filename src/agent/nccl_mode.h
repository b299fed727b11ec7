// The NCCL transfer mode (agent.mode = nccl): what RL frameworks do today (prime-rl's NCCL mode,
// vLLM's NCCL weight transfer), built into the same agents, push protocol and commit semantics,
// so every GPU benchmark can print it beside the write mode.
//
// Trainer rank 0 broadcasts every full bf16/fp32 source tensor over one communicator of
// {trainer 0, every inference rank}; each inference rank receives all of them into receive
// buffers and converts them with the CUDA kernels into its registered tensors.
//
// First version's limits (checked, with a clear error): one trainer rank (fsdp = 1, so rank 0
// holds whole tensors) with its sources on a GPU; inference tensor parallel 1 (expert parallel
// and replicas allowed) with destinations on GPUs; one GPU per rank (NCCL refuses two ranks on
// one device).
//
// Every wait has a deadline: the communicator is created non-blocking and each broadcast group is
// polled; at the deadline, or on an error, the communicator is aborted and the push fails.
//
// Threading: one thread (the agent's push thread) per object.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "control/deadline.h"
#include "control/store_client.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

// Refuses jobs this mode does not handle yet, naming what differs.
Status CheckNcclModeSupports(const JobPlan& job);

class NcclBroadcaster {
 public:
  // Trainer 0 is NCCL rank 0, inference rank r is NCCL rank 1 + r; rank 0 publishes the unique
  // id under the job's keys, the others wait for it. `alive` (optional) is polled while waiting,
  // so a dead peer or an aborted job fails the wait at once instead of at the deadline.
  static Result<std::unique_ptr<NcclBroadcaster>> Create(control::StoreClient& client,
                                                         const std::string& job_id, int nccl_rank,
                                                         int world, int device,
                                                         control::Deadline deadline,
                                                         std::function<Status()> alive = {});
  ~NcclBroadcaster();
  NcclBroadcaster(const NcclBroadcaster&) = delete;
  NcclBroadcaster& operator=(const NcclBroadcaster&) = delete;

  // One group of broadcasts from rank 0: rank 0's `buffers` are sent, every other rank's are
  // received into, in the same order and sizes on every rank.
  Status Broadcast(const std::vector<TensorView>& buffers, control::Deadline deadline);

  struct State;

 private:
  explicit NcclBroadcaster(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// An inference rank's side: receive buffers for every full source tensor (in the job's source
// order) and the conversion jobs that turn them into this rank's registered tensors.
class NcclReceiver {
 public:
  static Result<std::unique_ptr<NcclReceiver>> Create(
      const JobPlan& job, int rank, const std::map<std::string, TensorView>& destinations,
      int device);
  ~NcclReceiver();
  NcclReceiver(const NcclReceiver&) = delete;
  NcclReceiver& operator=(const NcclReceiver&) = delete;

  const std::vector<TensorView>& buffers() const { return buffers_; }
  // Converts the received sources into the registered tensors (one launch), and waits.
  Status Convert();

  struct Work;

 private:
  NcclReceiver() = default;
  std::vector<TensorView> buffers_;
  std::unique_ptr<Work> work_;
};

}  // namespace weightsync::agent
