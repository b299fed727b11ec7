// TrainerAgent's implementation, shared by its two source files (internal to src/agent):
// trainer_agent.cc (set-up, connections, the push's protocol steps) and trainer_transfer.cc (the
// data phase: scan, gathers, conversion and writes).
#pragma once

#include <array>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "agent/agent_session.h"
#include "agent/agent_transport.h"
#include "agent/gather_plan.h"
#include "agent/job_plan.h"
#include "agent/nccl_sender.h"
#include "agent/trainer_agent.h"
#include "agent/unit_converter.h"
#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"
#include "push/trainer_push.h"
#include "transport/staging_pool.h"

namespace weightsync::agent {

using transport::PeerId;
using transport::RemoteRegionId;
using transport::Write;

constexpr int64_t kSlotAlignment = 256;  // the planner's slot alignment inside a staging ring
inline int64_t AlignUp(int64_t n) {
  return (n + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
}

inline double SecondsSince(control::Clock::time_point start) {
  return std::chrono::duration<double>(control::Clock::now() - start).count();
}

class TrainerAgent::Impl {
 public:
  Status Init(const AgentOptions& options, int rank, std::map<std::string, TensorView> sources);
  Result<PushReport> Push(uint64_t step);
  std::string Describe() const;
  int rank() const { return rank_; }

 private:
  // agent.mode=nccl: the communicators instead of transports, staging and connections.
  Status InitNccl(Status sources_ok);
  Status Connect(const std::vector<SetupInfo>& everyone);
  // Connects to `info`'s rank (again, after a restart) and imports its regions, when this rank
  // writes to it.
  Status ConnectTo(const SetupInfo& info);
  Status Transfer(uint64_t step, PushReport& report);
  Status Scan(uint64_t step) const;
  // The scan's verdict (started with the push), once; records its span.
  Status AwaitScan(PushReport& report);
  Status Gather(transport::Deadline deadline, PushReport& report);
  Status GatherBarrier(uint64_t step, control::Deadline deadline);
  // Scan, gathers and the gather barrier: what must happen before the first write.
  Status Prepare(uint64_t step, transport::Deadline deadline, PushReport& report);
  // Converts units on a converter thread from the start (into staging only) while this thread
  // runs Prepare; then posts each converted unit's writes. Gathered units wait for Prepare.
  Status ConvertAndWrite(uint64_t step, transport::Deadline deadline, PushReport& report);
  Status PostUnitWrites(int32_t unit_id, transport::Deadline deadline, PushReport& report);
  Status FlushAll(transport::Deadline deadline);
  // Rows `rows` of `piece` from this rank's own shard, as a 2D view.
  Result<TensorView> LocalRows(const SourcePiece& piece, Range rows) const;
  // The source of a unit's piece: the gather buffer for gathered units, the shard otherwise.
  Result<TensorView> UnitSource(int32_t unit_id, int64_t part, int32_t piece, Range rows) const;
  void ForgetGatherBarrier(uint64_t step);

  AgentOptions options_;
  int rank_ = 0;
  JobPlan job_;
  GatherPlan gathers_;
  std::map<std::string, TensorView> sources_;
  std::map<std::string, SourceShard> shards_;
  // Where each (unit, part, piece) of this rank's gathered units starts in its gather buffer.
  std::map<std::tuple<int32_t, int64_t, int32_t>, int64_t> gather_offsets_;

  std::unique_ptr<transport::Transport> writer_;    // posts every write; the push thread only
  std::unique_ptr<transport::Transport> receiver_;  // holds the gather buffer; progress_ only
  std::unique_ptr<transport::StagingPool> staging_;  // on writer_: the ring and gather sends
  transport::Slot ring_, send_;
  std::unique_ptr<transport::StagingPool> gather_pool_;  // on receiver_
  transport::Slot gather_buffer_;
  std::unique_ptr<ProgressThread> progress_;

  std::unique_ptr<AgentSession> session_;
  std::unique_ptr<push::TrainerPush> push_;
  std::set<int> inference_targets_;        // global inference ranks this rank writes
  std::set<int> gather_targets_;           // trainer ranks this rank gathers for
  std::map<int, PeerId> inference_peers_;  // global inference rank -> connection
  std::map<int, PeerId> trainer_peers_;    // trainer rank -> connection (gathers)
  std::map<int, RemoteRegionId> gather_remote_;
  // [global inference rank][tensor] -> {weight, scale} regions.
  std::map<int, std::vector<std::array<RemoteRegionId, 2>>> destinations_;
  // Where this rank's sources live: host memory (converted with ConvertFast) or one GPU
  // (converted with the CUDA kernels into GPU staging, written with cuda_ipc).
  bool gpu_ = false;
  int device_ = 0;
  CudaStream stream_ = nullptr;          // GPU: scans and gathers (the push thread's)
  CudaStream convert_stream_ = nullptr;  // GPU: the converter thread's
  std::unique_ptr<CudaConverter> cuda_;
  void* scratch_ = nullptr;  // the converter thread's: host or device, UnitScratchBytes at most
  std::vector<uint8_t> host_scratch_;

 public:
  ~Impl() {
    if (gpu_) {
      DeviceFree(scratch_);
      DestroyCudaStream(stream_);
      DestroyCudaStream(convert_stream_);
    }
  }

 private:
  Status ConvertUnitIntoSlot(int32_t unit_id);
  std::optional<uint64_t> gather_step_to_forget_;
  std::unique_ptr<NcclSender> nccl_;  // agent.mode=nccl: gathers and broadcasts
  std::future<Status> scan_;  // the push's NaN/Inf scan, started before the pause
  PhaseSpan scan_span_;       // set by the scan
};

}  // namespace weightsync::agent
