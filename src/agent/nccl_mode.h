// The NCCL transfer mode (agent.mode = nccl): what RL frameworks do today (prime-rl's NCCL mode,
// vLLM's NCCL weight transfer), built into the same agents, push protocol and commit semantics,
// so every GPU benchmark can print it beside the write mode.
//
// A push, bucket by bucket (groups of about kNcclBucketBytes of sources, in source order):
//   1. gather: the FSDP ranks of trainer replica 0 send their shards of the bucket's tensors to
//      trainer rank 0 over the trainers' communicator (skipped when fsdp = 1: rank 0 holds whole
//      tensors and broadcasts them in place);
//   2. broadcast: trainer rank 0 broadcasts the bucket's full bf16/fp32 tensors over one
//      communicator of {trainer 0, every inference rank}; each inference rank receives them all.
// Then every inference rank converts the full tensors with the CUDA kernels into its registered
// tensors, cutting tensor-parallel slices out of the converted full tensor (nccl_receiver.h).
// Other trainer replicas (hsdp > 1) take no part.
//
// Every wait has a deadline: communicators are created non-blocking and each group of
// operations is polled; at the deadline, on an error, or when the job's liveness check fails, the
// communicator is aborted and the push fails. One GPU per rank (NCCL refuses two ranks on one
// device).
//
// Threading: one thread (the agent's push thread) per object.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/job_plan.h"
#include "control/deadline.h"
#include "control/store_client.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

// Sources per broadcast group: large enough that NCCL runs at full speed, small enough that rank
// 0's gather buffer stays a small part of a GPU (a larger tensor gets a bucket of its own).
constexpr int64_t kNcclBucketBytes = int64_t{1} << 30;

// Indices into job.sources, grouped in source order. Every rank computes the same buckets, so
// the broadcasts of one group match on every rank.
std::vector<std::vector<size_t>> NcclBuckets(const JobPlan& job);

class NcclCommunicator {
 public:
  // Rank 0 creates the unique id and publishes it under the job's key for `name` ("gather",
  // "broadcast"); the others wait for it. `alive` (optional) is polled while waiting, so a dead
  // peer or an aborted job fails the wait at once instead of at the deadline.
  static Result<std::unique_ptr<NcclCommunicator>> Create(
      control::StoreClient& client, const std::string& job_id, std::string_view name, int nccl_rank,
      int world, int device, control::Deadline deadline, std::function<Status()> alive = {});
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // One group of broadcasts from rank 0: rank 0's `buffers` are sent, every other rank's are
  // received into, in the same order and sizes on every rank (bf16 or fp32).
  Status Broadcast(const std::vector<TensorView>& buffers, control::Deadline deadline);

  // One group of point-to-point transfers (a rank may send to itself).
  struct PeerTransfer {
    void* data = nullptr;
    int64_t bytes = 0;
    int peer = 0;
    bool send = false;
  };
  Status Exchange(const std::vector<PeerTransfer>& transfers, control::Deadline deadline);

  struct State;

 private:
  explicit NcclCommunicator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace weightsync::agent
