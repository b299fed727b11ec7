// A trainer rank's side of the NCCL transfer mode (nccl_mode.h): per bucket, the FSDP ranks of
// replica 0 send their shards to trainer rank 0 (the gather an FSDP framework runs before its
// broadcast), and rank 0 broadcasts the bucket's full tensors to every inference rank.
//
// Threading: one thread (the agent's push thread).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "agent/nccl_mode.h"
#include "control/store_client.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

class NcclSender {
 public:
  // Joins the communicators this rank takes part in (trainer ranks of replica 0: the gather one
  // when fsdp > 1; rank 0 also the broadcast one) and allocates rank 0's gather buffer.
  // `sources` are this rank's shards on `device`.
  static Result<std::unique_ptr<NcclSender>> Create(
      const JobPlan& job, int rank, const std::map<std::string, TensorView>& sources,
      control::StoreClient& client, const std::string& job_id, int device,
      control::Deadline deadline, std::function<Status()> alive);
  ~NcclSender();
  NcclSender(const NcclSender&) = delete;
  NcclSender& operator=(const NcclSender&) = delete;

  // One push; returns the bytes this rank sent (its shards, and rank 0's broadcasts).
  Result<int64_t> Send(control::Deadline deadline);

 private:
  NcclSender() = default;
  // The gather of one bucket into rank 0's buffer: every rank's sends, rank 0's receives.
  std::vector<NcclCommunicator::PeerTransfer> GatherTransfers(const std::vector<size_t>& bucket,
                                                              int64_t& sent) const;

  const JobPlan* job_ = nullptr;
  int shard_rank_ = 0;  // rank inside replica 0
  std::map<std::string, TensorView> sources_;
  std::vector<std::vector<size_t>> buckets_;
  std::unique_ptr<NcclCommunicator> gather_;     // fsdp > 1
  std::unique_ptr<NcclCommunicator> broadcast_;  // rank 0
  void* buffer_ = nullptr;                       // rank 0, fsdp > 1: one bucket's full tensors
};

}  // namespace weightsync::agent
