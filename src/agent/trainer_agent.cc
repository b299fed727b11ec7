#include "agent/trainer_agent.h"

#include "agent/trainer_agent_impl.h"

namespace weightsync::agent {

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
  if (options.mode == "nccl") return InitNccl(sources_ok);
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

Status TrainerAgent::Impl::InitNccl(Status sources_ok) {
  if (sources_ok.ok() && !gpu_) {
    sources_ok = Unimplemented("agent.mode=nccl broadcasts GPU tensors; trainer ", rank_,
                               "'s sources are in host memory");
  }
  SetupInfo mine;
  mine.id = {control::Role::kTrainer, rank_};
  mine.plan_hash = job_.plan.hash;
  mine.backend = "nccl";
  mine.address = {"nccl", transport::CurrentProcessIdentity(rank_), {}};
  WS_ASSIGN_OR_RETURN(session_, AgentSession::Join(options_, job_, mine.id));
  if (!sources_ok.ok()) return session_->AbortJob(sources_ok);
  WS_RETURN_IF_ERROR(session_->Exchange(mine).status());
  Result<std::unique_ptr<NcclSender>> sender = NcclSender::Create(
      job_, rank_, sources_, *session_->rendezvous().context().client, options_.job_id, device_,
      control::DeadlineIn(options_.join_timeout_s), [this] { return session_->CheckJob(); });
  if (!sender.ok()) return session_->AbortJob(sender.status());
  nccl_ = std::move(*sender);
  push_ = std::make_unique<push::TrainerPush>(session_->rendezvous(), options_.push);
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
  {
    SpanTimer span(report.spans, "pause");
    if (Status begun = push_->BeginPush(step); !begun.ok()) {
      (void)AwaitScan(report);
      return begun;
    }
  }
  if (Status started = push_->StartTransfer(); !started.ok()) {
    (void)AwaitScan(report);
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

std::string TrainerAgent::Impl::Describe() const {
  const TrainerRankLoad& load = job_.plan.trainer[rank_];
  return StrCat("trainer ", rank_, " (", gpu_ ? StrCat("cuda:", device_) : "cpu", "): plan ",
                job_.plan.hash, ", ", load.units, " units, ",
                load.writes, " writes, ", load.write_bytes, " bytes per push, staging ",
                load.staging_bytes, " bytes, gather buffer ", gathers_.buffer_bytes[rank_],
                " bytes, transport ", writer_ ? writer_->name() : "nccl (broadcast)");
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
