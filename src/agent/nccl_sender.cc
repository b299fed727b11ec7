#include "agent/nccl_sender.h"

#include "convert/cuda/device_ops.h"

namespace weightsync::agent {
namespace {

constexpr int64_t kBufferAlignment = 256;

int64_t Aligned(int64_t n) {
  return (n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

}  // namespace

NcclSender::~NcclSender() { DeviceFree(buffer_); }

Result<std::unique_ptr<NcclSender>> NcclSender::Create(
    const JobPlan& job, int rank, const std::map<std::string, TensorView>& sources,
    control::StoreClient& client, const std::string& job_id, int device, control::Deadline deadline,
    std::function<Status()> alive) {
  std::unique_ptr<NcclSender> out(new NcclSender());
  out->job_ = &job;
  out->sources_ = sources;
  out->buckets_ = NcclBuckets(job);
  const int fsdp = job.plan.options.trainer.fsdp;
  if (rank >= fsdp) return out;  // another replica: holds the same bytes, sends nothing
  out->shard_rank_ = rank;
  if (fsdp > 1) {
    WS_ASSIGN_OR_RETURN(out->gather_, NcclCommunicator::Create(client, job_id, "gather", rank, fsdp,
                                                               device, deadline, alive));
  }
  if (rank != 0) return out;
  WS_ASSIGN_OR_RETURN(out->broadcast_,
                      NcclCommunicator::Create(client, job_id, "broadcast", 0,
                                               1 + job.inference_world(), device, deadline, alive));
  if (fsdp > 1) {
    int64_t largest = 0;
    for (const std::vector<size_t>& bucket : out->buckets_) {
      int64_t bytes = 0;
      for (size_t i : bucket) bytes += Aligned(job.sources[i].bytes());
      largest = std::max(largest, bytes);
    }
    WS_ASSIGN_OR_RETURN(out->buffer_, DeviceAlloc(largest));
  }
  return out;
}

std::vector<NcclCommunicator::PeerTransfer> NcclSender::GatherTransfers(
    const std::vector<size_t>& bucket, int64_t& sent) const {
  std::vector<NcclCommunicator::PeerTransfer> out;
  const int fsdp = job_->plan.options.trainer.fsdp;
  int64_t offset = 0;
  for (size_t i : bucket) {
    const SourceTensor& source = job_->sources[i];
    // Shards split dim 0 (rows, or experts of a stack): each is one contiguous run of the full
    // tensor, so rank 0 receives shard t at its first row's offset.
    const int64_t row_bytes = source.bytes() / std::max<int64_t>(source.shape[0], 1);
    const SourceShard mine = job_->ShardOf(source, shard_rank_);
    if (mine.first_dim.size() > 0) {
      out.push_back({sources_.at(source.name).data, mine.first_dim.size() * row_bytes, 0, true});
      sent += out.back().bytes;
    }
    if (shard_rank_ == 0) {
      auto* full = static_cast<uint8_t*>(buffer_) + offset;
      for (int t = 0; t < fsdp; ++t) {
        const Range rows = job_->ShardOf(source, t).first_dim;
        if (rows.size() > 0) {
          out.push_back({full + rows.begin * row_bytes, rows.size() * row_bytes, t, false});
        }
      }
    }
    offset += Aligned(source.bytes());
  }
  return out;
}

Result<int64_t> NcclSender::Send(control::Deadline deadline) {
  int64_t sent = 0;
  if (!gather_ && !broadcast_) return sent;
  for (const std::vector<size_t>& bucket : buckets_) {
    if (gather_) WS_RETURN_IF_ERROR(gather_->Exchange(GatherTransfers(bucket, sent), deadline));
    if (!broadcast_) continue;
    std::vector<TensorView> full;
    int64_t offset = 0;
    for (size_t i : bucket) {
      const SourceTensor& source = job_->sources[i];
      if (gather_) {
        full.push_back(TensorView::Contiguous(static_cast<uint8_t*>(buffer_) + offset, source.shape,
                                              source.dtype));
        offset += Aligned(source.bytes());
      } else {
        full.push_back(sources_.at(source.name));  // fsdp = 1: rank 0 holds whole tensors
      }
      sent += source.bytes();
    }
    WS_RETURN_IF_ERROR(broadcast_->Broadcast(full, deadline));
  }
  return sent;
}

}  // namespace weightsync::agent
