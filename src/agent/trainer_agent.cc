#include "agent/trainer_agent.h"

#include <condition_variable>
#include <future>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "agent/agent_session.h"
#include "agent/agent_transport.h"
#include "agent/gather_plan.h"
#include "agent/job_plan.h"
#include "agent/unit_converter.h"
#include "control/collective.h"
#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"
#include "convert/finite_check.h"
#include "push/trainer_push.h"
#include "transport/staging_pool.h"

namespace weightsync::agent {
namespace {

using transport::PeerId;
using transport::RemoteRegionId;
using transport::Write;

constexpr int64_t kSlotAlignment = 256;  // the planner's slot alignment inside a staging ring
int64_t AlignUp(int64_t n) { return (n + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment; }

double SecondsSince(control::Clock::time_point start) {
  return std::chrono::duration<double>(control::Clock::now() - start).count();
}

}  // namespace

class TrainerAgent::Impl {
 public:
  Status Init(const AgentOptions& options, int rank, std::map<std::string, TensorView> sources);
  Result<PushReport> Push(uint64_t step);
  std::string Describe() const;
  int rank() const { return rank_; }

 private:
  Status Connect(const std::vector<SetupInfo>& everyone);
  // Connects to `info`'s rank (again, after a restart) and imports its regions, when this rank
  // writes to it.
  Status ConnectTo(const SetupInfo& info);
  Status Transfer(uint64_t step, PushReport& report);
  Status Scan(uint64_t step) const;
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
  std::future<Status> scan_;  // the push's NaN/Inf scan, started before the pause
  PhaseSpan scan_span_;       // set by the scan
};

Status TrainerAgent::Impl::Init(const AgentOptions& options, int rank,
                                std::map<std::string, TensorView> sources) {
  options_ = options;
  rank_ = rank;
  sources_ = std::move(sources);
  WS_ASSIGN_OR_RETURN(job_, BuildJobPlan(options));
  const std::string me = StrCat("trainer ", rank);
  if (rank < 0 || rank >= job_.trainer_world()) {
    return InvalidArgument(me, ": the job has trainer ranks 0..", job_.trainer_world() - 1, " (",
                           job_.plan.options.trainer.ToString(), ")");
  }
  std::vector<SourceShard> shards = job_.ShardsOf(rank);
  for (const SourceShard& shard : shards) shards_[shard.name] = shard;
  Status sources_ok = CheckSources(shards, sources_, me);
  gathers_ = BuildGatherPlan(job_);
  for (const GatherSegment& s : gathers_.segments) {
    if (s.owner == rank) gather_offsets_.try_emplace({s.unit, s.part, s.piece}, s.buffer_offset);
  }

  for (const auto& [name, view] : sources_) {
    if (view.device.kind == DeviceKind::kCuda) gpu_ = true, device_ = view.device.index;
  }
  for (const auto& [name, view] : sources_) {
    if (sources_ok.ok() && (view.device.kind == DeviceKind::kCuda) != gpu_) {
      sources_ok = InvalidArgument(me, ": source tensor ", name, " is on ", view.device.ToString(),
                                   "; all of a rank's sources must be on the CPU or on one GPU");
    } else if (sources_ok.ok() && gpu_ && view.device.index != device_) {
      sources_ok = InvalidArgument(me, ": source tensor ", name, " is on ", view.device.ToString(),
                                   ", others on cuda:", device_, "; use one GPU per trainer rank");
    }
  }
  if (gpu_) {
    WS_RETURN_IF_ERROR(CudaConversionAvailable().WithContext(me));
    WS_RETURN_IF_ERROR(SetCudaDevice(device_));
    WS_ASSIGN_OR_RETURN(stream_, CreateCudaStream());
    WS_ASSIGN_OR_RETURN(convert_stream_, CreateCudaStream());
    cuda_ = std::make_unique<CudaConverter>();
  }
  const auto pool_memory = gpu_ ? transport::PoolMemory::kCuda : transport::PoolMemory::kHost;
  int64_t scratch_bytes = 0;
  for (int32_t u : job_.plan.schedule[rank]) {
    const ConvertUnit& unit = job_.plan.units[u];
    scratch_bytes = std::max(scratch_bytes, UnitScratchBytes(job_.plan.tensors[unit.tensor], unit));
  }
  if (gpu_) {
    WS_ASSIGN_OR_RETURN(scratch_, DeviceAlloc(scratch_bytes));
  } else {
    host_scratch_.resize(scratch_bytes);
    scratch_ = host_scratch_.data();
  }

  const std::string backend = ResolveBackend(options.transport, gpu_);
  WS_ASSIGN_OR_RETURN(writer_, OpenTransport(options, backend, rank, device_));
  const int64_t ring_bytes = job_.plan.trainer[rank].staging_bytes;
  const int64_t send_bytes = gathers_.SendBytes(rank);
  WS_ASSIGN_OR_RETURN(
      staging_, transport::StagingPool::Create(*writer_, pool_memory,
                                               AlignUp(ring_bytes) + AlignUp(send_bytes) + 512,
                                               StrCat(me, " staging"), device_));
  WS_ASSIGN_OR_RETURN(ring_, staging_->Allocate(std::max<int64_t>(ring_bytes, 1), "ring"));
  WS_ASSIGN_OR_RETURN(send_, staging_->Allocate(std::max<int64_t>(send_bytes, 1), "gather sends"));

  SetupInfo mine;
  mine.id = {control::Role::kTrainer, rank};
  mine.plan_hash = job_.plan.hash;
  mine.backend = backend;
  if (const int64_t bytes = gathers_.buffer_bytes[rank]; bytes > 0) {
    WS_ASSIGN_OR_RETURN(receiver_, OpenTransport(options, backend, rank, device_));
    WS_ASSIGN_OR_RETURN(gather_pool_,
                        transport::StagingPool::Create(*receiver_, pool_memory, bytes,
                                                       StrCat(me, " gather buffer"), device_));
    WS_ASSIGN_OR_RETURN(gather_buffer_, gather_pool_->Allocate(bytes, "gathered sources"));
    WS_ASSIGN_OR_RETURN(auto descriptor, receiver_->Export(gather_pool_->region()));
    mine.regions["gather"] = {DType::kU8, {bytes}, std::move(descriptor)};
    WS_ASSIGN_OR_RETURN(mine.address, receiver_->LocalAddress());
    if (receiver_->capabilities().target_progress) {
      progress_ = std::make_unique<ProgressThread>(*receiver_);
    }
  } else {
    WS_ASSIGN_OR_RETURN(mine.address, writer_->LocalAddress());
  }

  WS_ASSIGN_OR_RETURN(session_, AgentSession::Join(options, job_, mine.id));
  // A bad source is reported to every rank (the job is aborted), not only to this caller.
  if (!sources_ok.ok()) return session_->AbortJob(sources_ok);
  WS_ASSIGN_OR_RETURN(std::vector<SetupInfo> everyone, session_->Exchange(mine));
  if (Status s = Connect(everyone); !s.ok()) return session_->AbortJob(s);
  push_ = std::make_unique<push::TrainerPush>(session_->rendezvous(), options.push);
  return Status::Ok();
}

Status TrainerAgent::Impl::Connect(const std::vector<SetupInfo>& everyone) {
  const TransferPlan& plan = job_.plan;
  const int ranks = plan.options.inference.ranks();
  for (int32_t u : plan.schedule[rank_]) {
    const ConvertUnit& unit = plan.units[u];
    for (int64_t w = unit.first_write; w < unit.first_write + unit.write_count; ++w) {
      inference_targets_.insert(plan.writes[w].replica * ranks + plan.writes[w].rank);
    }
  }
  for (const GatherSegment& s : gathers_.segments) {
    if (s.holder == rank_ && s.owner != rank_) gather_targets_.insert(s.owner);
  }
  for (const SetupInfo& info : everyone) WS_RETURN_IF_ERROR(ConnectTo(info));
  return Status::Ok();
}

Status TrainerAgent::Impl::ConnectTo(const SetupInfo& info) {
  const auto deadline = transport::DeadlineIn(options_.transport_options.connect_timeout_s);
  const int peer_rank = info.id.rank;
  const bool inference = info.id.role == control::Role::kInference;
  std::map<int, PeerId>& peers = inference ? inference_peers_ : trainer_peers_;
  if (!(inference ? inference_targets_ : gather_targets_).count(peer_rank)) return Status::Ok();
  if (auto old = peers.find(peer_rank); old != peers.end()) {
    (void)writer_->Disconnect(old->second);  // a restarted peer: its old regions are gone
    peers.erase(old);
  }
  Result<PeerId> connected = writer_->Connect(info.address, deadline);
  if (!connected.ok()) return connected.status().WithContext(StrCat("connecting to ", info.id.ToString()));
  const PeerId peer = *connected;
  peers[peer_rank] = peer;
  if (inference) {
    auto& regions = destinations_[peer_rank];
    regions.assign(job_.plan.tensors.size(), {});
    for (const DestinationTensor& d : job_.DestinationsOf(peer_rank)) {
      const PublishedRegion& published = info.regions.at(d.name);
      WS_ASSIGN_OR_RETURN(regions[d.tensor][d.scale ? 1 : 0],
                          writer_->Import(peer, published.descriptor, d.bytes()));
    }
    return Status::Ok();
  }
  auto it = info.regions.find("gather");
  if (it == info.regions.end()) {
    return Internal(info.id.ToString(), " published no gather buffer, but owns gathered units");
  }
  WS_ASSIGN_OR_RETURN(gather_remote_[peer_rank],
                      writer_->Import(peer, it->second.descriptor,
                                      gathers_.buffer_bytes[peer_rank]));
  return Status::Ok();
}

Result<PushReport> TrainerAgent::Impl::Push(uint64_t step) {
  PushReport report;
  report.step = step;
  const auto start = control::Clock::now();
  // The NaN/Inf scan only reads the sources, so it runs while the inference ranks pause; the
  // transfer waits for its verdict before any write (Prepare).
  const int64_t scan_start = WallMicros();
  scan_ = std::async(std::launch::async, [this, step, scan_start] {
    if (gpu_) WS_RETURN_IF_ERROR(SetCudaDevice(device_));
    Status scanned = Scan(step);
    scan_span_ = {"scan", scan_start, WallMicros() - scan_start};
    return scanned;
  });
  const auto finish_scan = [this, &report] {
    Status scanned = scan_.valid() ? scan_.get() : Status::Ok();
    report.spans.push_back(scan_span_);
    return scanned;
  };
  {
    SpanTimer span(report.spans, "pause");
    if (Status begun = push_->BeginPush(step); !begun.ok()) {
      (void)finish_scan();
      return begun;
    }
  }
  if (Status started = push_->StartTransfer(); !started.ok()) {
    (void)finish_scan();
    return started;
  }
  if (progress_) progress_->SetActive(true);
  Status transfer = Transfer(step, report);
  if (progress_) progress_->SetActive(false);
  {
    SpanTimer span(report.spans, "transfer-barrier");
    WS_RETURN_IF_ERROR(push_->FinishTransfer(transfer));
  }
  {
    SpanTimer span(report.spans, "commit");
    WS_RETURN_IF_ERROR(push_->Commit(step));
  }
  ForgetGatherBarrier(step);
  report.seconds = SecondsSince(start);
  return report;
}

Status TrainerAgent::Impl::Transfer(uint64_t step, PushReport& report) {
  const auto deadline = transport::DeadlineIn(options_.push.transfer_timeout_s);
  {
    // Every rank has paused, so a restarted rank has published its new regions by now.
    SpanTimer span(report.spans, "reconnect");
    WS_ASSIGN_OR_RETURN(std::vector<SetupInfo> changed, session_->ChangedSetups());
    for (const SetupInfo& info : changed) WS_RETURN_IF_ERROR(ConnectTo(info));
  }
  return ConvertAndWrite(step, deadline, report);
}

Status TrainerAgent::Impl::Prepare(uint64_t step, transport::Deadline deadline,
                                   PushReport& report) {
  {
    SpanTimer span(report.spans, "scan-wait");
    Status scanned = scan_.get();
    report.spans.push_back(scan_span_);
    WS_RETURN_IF_ERROR(scanned);
  }
  {
    SpanTimer span(report.spans, "gather");
    WS_RETURN_IF_ERROR(Gather(deadline, report));
  }
  // Every trainer rank's sources passed the scan and its gathers landed: only now may any byte
  // go to an inference rank.
  SpanTimer span(report.spans, "gather-barrier");
  return GatherBarrier(step, deadline);
}

Status TrainerAgent::Impl::Scan(uint64_t step) const {
  std::vector<std::pair<const std::string*, int64_t>> bad;  // tensor, first bad element
  if (gpu_) {
    std::vector<DeviceElements> tensors;
    for (const auto& [name, view] : sources_) tensors.push_back({view.data, view.dtype, view.numel()});
    WS_ASSIGN_OR_RETURN(std::vector<int64_t> first, FirstNonFiniteOnDevice(tensors, stream_));
    size_t i = 0;
    for (const auto& [name, view] : sources_) {
      if (first[i] >= 0) bad.push_back({&name, first[i]});
      ++i;
    }
  } else {
    for (const auto& [name, view] : sources_) {
      const int64_t first = FirstNonFinite(view.data, view.dtype, view.numel());
      if (first >= 0) bad.push_back({&name, first});
    }
  }
  if (bad.empty()) return Status::Ok();
  const std::string& name = *bad.front().first;
  const TensorView& view = sources_.at(name);
  const SourceShard& shard = shards_.at(name);
  const int64_t per_row = view.dim() > 0 && view.shape[0] > 0 ? view.numel() / view.shape[0] : 1;
  const int64_t element = bad.front().second;
  return InvalidArgument("step ", step, ": source tensor ", name, " holds a NaN or Inf at element ",
                         element % per_row, " of ", shard.stacked ? "expert " : "row ",
                         shard.first_dim.begin + element / per_row,
                         "; nothing of this step was written to any inference rank");
}

Result<TensorView> TrainerAgent::Impl::LocalRows(const SourcePiece& piece, Range rows) const {
  const SourceShard& shard = shards_.at(piece.tensor);
  TensorView view = sources_.at(piece.tensor);
  if (piece.index >= 0) {
    if (piece.index < shard.first_dim.begin || piece.index >= shard.first_dim.end) {
      return Internal("trainer ", rank_, " does not hold expert ", piece.index, " of ",
                      piece.tensor);
    }
    WS_ASSIGN_OR_RETURN(view, view.Select(piece.index - shard.first_dim.begin));
    return view.Narrow(rows.begin, rows.size());
  }
  if (rows.begin < shard.first_dim.begin || rows.end > shard.first_dim.end) {
    return Internal("trainer ", rank_, " does not hold rows [", rows.begin, ", ", rows.end,
                    ") of ", piece.tensor);
  }
  WS_ASSIGN_OR_RETURN(view, view.Narrow(rows.begin - shard.first_dim.begin, rows.size()));
  if (view.dim() == 1) view = TensorView::Contiguous(view.data, {rows.size(), 1}, view.dtype);
  return view;
}

Result<TensorView> TrainerAgent::Impl::UnitSource(int32_t unit_id, int64_t part, int32_t piece,
                                                  Range rows) const {
  const ConvertUnit& unit = job_.plan.units[unit_id];
  const SourcePiece& p = job_.plan.tensors[unit.tensor].pieces[part][piece];
  if (!unit.gathered) return LocalRows(p, rows);
  auto it = gather_offsets_.find({unit_id, part, piece});
  if (it == gather_offsets_.end()) {
    return Internal("trainer ", rank_, ": no gathered rows of ", p.tensor, " for unit ", unit_id);
  }
  const DType dtype = job_.FindSource(p.tensor)->dtype;
  return TensorView::Contiguous(static_cast<char*>(gather_buffer_.data) + it->second,
                                {rows.size(), p.cols}, dtype);
}

Status TrainerAgent::Impl::Gather(transport::Deadline deadline, PushReport& report) {
  std::map<int, std::vector<Write>> writes;  // owner -> writes
  int64_t sent = 0;
  for (const GatherSegment& s : gathers_.segments) {
    if (s.holder != rank_) continue;
    const ConvertUnit& unit = job_.plan.units[s.unit];
    const SourcePiece& piece = job_.plan.tensors[unit.tensor].pieces[s.part][s.piece];
    WS_ASSIGN_OR_RETURN(TensorView rows, LocalRows(piece, s.source_rows));
    // Sources are not registered memory: stage them (or, for this rank's own units, copy them
    // straight into the gather buffer), then write.
    char* to = s.owner == rank_ ? static_cast<char*>(gather_buffer_.data) + s.buffer_offset
                                : static_cast<char*>(send_.data) + sent;
    if (gpu_) {
      WS_RETURN_IF_ERROR(CopyDevice2DAsync(to, s.bytes, rows.data, s.bytes, s.bytes, 1, stream_));
    } else {
      std::memcpy(to, rows.data, s.bytes);
    }
    if (s.owner == rank_) continue;
    writes[s.owner].push_back(Write{staging_->region(), send_.offset + sent, gather_remote_[s.owner],
                                    static_cast<uint64_t>(s.buffer_offset),
                                    static_cast<uint64_t>(s.bytes)});
    sent += s.bytes;
  }
  if (gpu_) WS_RETURN_IF_ERROR(SynchronizeCudaStream(stream_));
  for (auto& [owner, batch] : writes) {
    WS_RETURN_IF_ERROR(writer_->PostWrites(trainer_peers_[owner], batch, deadline)
                           .WithContext(StrCat("gathering rows into trainer ", owner)));
  }
  for (auto& [owner, batch] : writes) {
    WS_RETURN_IF_ERROR(writer_->Flush(trainer_peers_[owner], deadline)
                           .WithContext(StrCat("gathering rows into trainer ", owner)));
  }
  report.gather_bytes = sent;
  return Status::Ok();
}

Status TrainerAgent::Impl::GatherBarrier(uint64_t step, control::Deadline deadline) {
  control::CollectiveContext context = session_->rendezvous().context();
  std::erase_if(context.everyone,
                [](const control::ParticipantId& id) { return id.role != control::Role::kTrainer; });
  context.cancel_key = push::keys::Failed(options_.job_id, step);
  return control::ArriveAndWait(context, "barrier", "push-gather", step, "", false, deadline)
      .status()
      .WithContext(StrCat("trainer ", rank_, ": gather barrier of step ", step));
}

void TrainerAgent::Impl::ForgetGatherBarrier(uint64_t step) {
  // Every trainer left the gather barrier of an earlier step once this step committed.
  if (rank_ == 0 && gather_step_to_forget_) {
    const std::string prefix = control::CollectiveGenerationPrefix(
        options_.job_id, "barrier", "push-gather", *gather_step_to_forget_);
    (void)session_->rendezvous().context().client->DeletePrefix(prefix, control::DeadlineIn(5));
  }
  gather_step_to_forget_ = step;
}

Status TrainerAgent::Impl::PostUnitWrites(int32_t unit_id, transport::Deadline deadline,
                                          PushReport& report) {
  const TransferPlan& plan = job_.plan;
  const ConvertUnit& unit = plan.units[unit_id];
  const int ranks = plan.options.inference.ranks();
  std::map<int, std::vector<Write>> by_peer;
  for (int64_t i = unit.first_write; i < unit.first_write + unit.write_count; ++i) {
    const PlannedWrite& w = plan.writes[i];
    const int target = w.replica * ranks + w.rank;
    const uint64_t slot = ring_.offset + unit.staging_offset +
                          (w.scale ? AlignUp(unit.weight_bytes) : 0) + w.slot_offset;
    by_peer[target].push_back(Write{staging_->region(), slot,
                                    destinations_[target][unit.tensor][w.scale ? 1 : 0],
                                    static_cast<uint64_t>(w.dest_offset),
                                    static_cast<uint64_t>(w.bytes)});
    report.bytes += w.bytes;
    report.writes += 1;
  }
  for (auto& [target, writes] : by_peer) {
    WS_RETURN_IF_ERROR(writer_->PostWrites(inference_peers_[target], writes, deadline)
                           .WithContext(StrCat("writing to inference ", target)));
  }
  return Status::Ok();
}

Status TrainerAgent::Impl::FlushAll(transport::Deadline deadline) {
  for (auto& [target, peer] : inference_peers_) {
    WS_RETURN_IF_ERROR(writer_->Flush(peer, deadline)
                           .WithContext(StrCat("flushing writes to inference ", target)));
  }
  return Status::Ok();
}

Status TrainerAgent::Impl::ConvertAndWrite(uint64_t step, transport::Deadline deadline,
                                           PushReport& report) {
  const TransferPlan& plan = job_.plan;
  const std::vector<int32_t>& schedule = plan.schedule[rank_];
  const size_t n = schedule.size();
  // Shared between this (writer) thread and the converter thread, under mu.
  std::mutex mu;
  std::condition_variable changed;
  size_t converted = 0;  // units [0, converted) of the schedule are in their slots
  size_t flushed = 0;    // units [0, flushed) have been written and flushed: their ring is free
  bool flush_wanted = false;
  bool prepared = false;  // Prepare succeeded: gathered sources are in place, writes may go
  bool stop = false;
  Status converter_status;
  double convert_seconds = 0;

  const auto overlaps = [&](size_t a, size_t b) {
    const ConvertUnit& x = plan.units[schedule[a]];
    const ConvertUnit& y = plan.units[schedule[b]];
    return x.staging_offset < y.staging_offset + y.staging_bytes &&
           y.staging_offset < x.staging_offset + x.staging_bytes;
  };
  std::thread converter([&] {
    if (gpu_) {
      if (Status s = SetCudaDevice(device_); !s.ok()) {
        std::lock_guard lock(mu);
        converter_status = s;
        stop = true;
        changed.notify_all();
        return;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      {
        std::unique_lock lock(mu);
        // Ring space: every earlier unit sharing these bytes must have been flushed.
        const auto ring_free = [&] {
          for (size_t j = flushed; j < i; ++j) {
            if (overlaps(j, i)) return false;
          }
          return true;
        };
        const bool gathered = plan.units[schedule[i]].gathered;
        while (!stop && (!ring_free() || (gathered && !prepared))) {
          if (gathered && !prepared && ring_free()) {
            if (changed.wait_until(lock, deadline) == std::cv_status::timeout) {
              converter_status = DeadlineExceeded("trainer ", rank_, ": waiting for gathers");
              stop = true;
            }
            continue;
          }
          flush_wanted = true;
          changed.notify_all();
          if (changed.wait_until(lock, deadline) == std::cv_status::timeout) {
            converter_status = DeadlineExceeded("trainer ", rank_,
                                                ": waiting for staging ring space");
            stop = true;
          }
        }
        if (stop) break;
      }
      const auto start = control::Clock::now();
      Status s = ConvertUnitIntoSlot(schedule[i]);
      std::lock_guard lock(mu);
      convert_seconds += SecondsSince(start);
      if (!s.ok()) {
        converter_status = s;
        stop = true;
      } else {
        converted = i + 1;
      }
      changed.notify_all();
      if (stop) break;
    }
  });

  const Status prepare_status = Prepare(step, deadline, report);
  Status status = prepare_status;
  {
    std::lock_guard lock(mu);
    prepared = status.ok();
    changed.notify_all();
  }
  SpanTimer span(report.spans, "convert+write");
  size_t posted = 0;
  while (status.ok() && posted < n) {
    std::unique_lock lock(mu);
    changed.wait_until(lock, deadline, [&] { return converted > posted || flush_wanted || stop; });
    if (stop) break;
    if (converted > posted) {
      lock.unlock();
      status = PostUnitWrites(schedule[posted], deadline, report);
      ++posted;
    } else if (flush_wanted) {
      lock.unlock();
      status = FlushAll(deadline);
      lock.lock();
      flushed = posted;
      flush_wanted = false;
      changed.notify_all();
    } else if (transport::Clock::now() >= deadline) {
      status = DeadlineExceeded("trainer ", rank_, ": converting unit ", posted, " of ", n);
    }
  }
  if (status.ok() && posted == n) status = FlushAll(deadline);
  {
    std::lock_guard lock(mu);
    stop = true;
    changed.notify_all();
  }
  converter.join();
  report.units = static_cast<int64_t>(converted);
  report.convert_seconds = convert_seconds;
  // A refused source is reported by the scan with its row, whatever the converter hit first.
  if (!prepare_status.ok()) return prepare_status;
  if (!converter_status.ok()) return converter_status;
  return status;
}

Status TrainerAgent::Impl::ConvertUnitIntoSlot(int32_t unit_id) {
  const ConvertUnit& unit = job_.plan.units[unit_id];
  char* slot = static_cast<char*>(ring_.data) + unit.staging_offset;
  const SlotTarget target{slot, reinterpret_cast<float*>(slot + AlignUp(unit.weight_bytes))};
  WS_ASSIGN_OR_RETURN(
      UnitWork work,
      PlanUnitWork(
          job_.plan.tensors[unit.tensor], unit,
          [&](int64_t part, int32_t piece, Range rows) {
            return UnitSource(unit_id, part, piece, rows);
          },
          target, scratch_));
  if (!gpu_) return RunOnCpu(work, options_.convert_threads);
  WS_RETURN_IF_ERROR(cuda_->Enqueue(work.jobs, convert_stream_));
  WS_RETURN_IF_ERROR(cuda_->Finish());
  for (const StridedCopy& c : work.copies) {
    WS_RETURN_IF_ERROR(CopyDevice2DAsync(c.dst, c.dst_pitch, c.src, c.src_pitch, c.width, c.height,
                                         convert_stream_));
  }
  return SynchronizeCudaStream(convert_stream_);
}

std::string TrainerAgent::Impl::Describe() const {
  const TrainerRankLoad& load = job_.plan.trainer[rank_];
  return StrCat("trainer ", rank_, " (", gpu_ ? StrCat("cuda:", device_) : "cpu", "): plan ",
                job_.plan.hash, ", ", load.units, " units, ",
                load.writes, " writes, ", load.write_bytes, " bytes per push, staging ",
                load.staging_bytes, " bytes, gather buffer ", gathers_.buffer_bytes[rank_],
                " bytes, transport ", writer_->name());
}

Result<std::unique_ptr<TrainerAgent>> TrainerAgent::Create(
    const AgentOptions& options, int rank, std::map<std::string, TensorView> sources) {
  auto impl = std::make_unique<Impl>();
  WS_RETURN_IF_ERROR(impl->Init(options, rank, std::move(sources)));
  return std::unique_ptr<TrainerAgent>(new TrainerAgent(std::move(impl)));
}

TrainerAgent::TrainerAgent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrainerAgent::~TrainerAgent() = default;
Result<PushReport> TrainerAgent::Push(uint64_t step) { return impl_->Push(step); }
int TrainerAgent::rank() const { return impl_->rank(); }
std::string TrainerAgent::Describe() const { return impl_->Describe(); }

}  // namespace weightsync::agent
