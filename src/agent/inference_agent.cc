#include "agent/inference_agent.h"

#include "agent/agent_session.h"
#include "agent/agent_transport.h"
#include "agent/job_plan.h"
#include "agent/nccl_receiver.h"
#include "push/admin_http.h"

namespace weightsync::agent {

class InferenceAgent::Impl {
 public:
  Status Init(const AgentOptions& options, int rank,
              std::map<std::string, TensorView> destinations, InferenceAgentOptions agent_options);
  Result<std::optional<PushReport>> ServeOnePush(double await_timeout_s);
  std::map<std::string, std::vector<int64_t>> ExpertMap() const;
  Status CheckExpertMap(const std::vector<int64_t>& expert_map) const;

  int rank_ = 0;
  JobPlan job_;
  std::unique_ptr<transport::Transport> transport_;  // only progress_ calls it after Init
  std::vector<transport::RegionId> regions_;
  std::unique_ptr<ProgressThread> progress_;
  std::unique_ptr<AgentSession> session_;
  std::unique_ptr<push::InferencePush> push_;
  std::unique_ptr<push::AdminServer> admin_;
  // agent.mode=nccl: receive buffers + conversion jobs, and the broadcast communicator.
  std::unique_ptr<NcclReceiver> nccl_receiver_;
  std::unique_ptr<NcclCommunicator> nccl_;
  double transfer_timeout_s_ = 300;
};

Status InferenceAgent::Impl::Init(const AgentOptions& options, int rank,
                                  std::map<std::string, TensorView> destinations,
                                  InferenceAgentOptions agent_options) {
  rank_ = rank;
  WS_ASSIGN_OR_RETURN(job_, BuildJobPlan(options));
  const std::string me = StrCat("inference ", rank);
  if (rank < 0 || rank >= job_.inference_world()) {
    return InvalidArgument(me, ": the job has inference ranks 0..", job_.inference_world() - 1,
                           " (", job_.plan.options.inference.ToString(), ")");
  }
  const std::vector<DestinationTensor> expected = job_.DestinationsOf(rank);
  Status tensors_ok = CheckDestinations(expected, destinations, me);
  if (tensors_ok.ok()) tensors_ok = CheckExpertMap(agent_options.expert_map);

  bool gpu = false;
  int cuda_device = 0;
  for (const auto& [name, view] : destinations) {
    if (view.device.kind == DeviceKind::kCuda) gpu = true, cuda_device = view.device.index;
  }
  transfer_timeout_s_ = options.push.transfer_timeout_s;
  const bool nccl = options.mode == "nccl";
  if (nccl && tensors_ok.ok() && !gpu) {
    tensors_ok = Unimplemented("agent.mode=nccl converts on a GPU; inference ", rank,
                               "'s tensors are in host memory");
  }
  const std::string backend = nccl ? "nccl" : ResolveBackend(options.transport, gpu);
  SetupInfo mine;
  mine.id = {control::Role::kInference, rank};
  mine.plan_hash = job_.plan.hash;
  mine.backend = backend;
  if (nccl) {
    // Nothing is registered: published shapes let the trainers check them all the same.
    for (const auto& [name, view] : destinations) {
      transport::RegionDescriptor descriptor;
      descriptor.backend = "nccl";
      descriptor.name = name;
      descriptor.length = static_cast<uint64_t>(view.nbytes());
      mine.regions[name] = {view.dtype, view.shape, descriptor};
    }
    mine.address = {"nccl", transport::CurrentProcessIdentity(rank), {}};
  } else {
    WS_ASSIGN_OR_RETURN(transport_, OpenTransport(options, backend, rank, cuda_device));
  }
  if (!nccl && tensors_ok.ok()) {
    for (const DestinationTensor& d : expected) {
      const TensorView& view = destinations.at(d.name);
      const auto kind = view.device.kind == DeviceKind::kCuda ? transport::MemoryKind::kCuda
                                                              : transport::MemoryKind::kHost;
      WS_ASSIGN_OR_RETURN(transport::RegionId region,
                          transport_->Register(view.data, view.nbytes(), kind, d.name));
      regions_.push_back(region);
      WS_ASSIGN_OR_RETURN(auto descriptor, transport_->Export(region));
      mine.regions[d.name] = {view.dtype, view.shape, std::move(descriptor)};
    }
  }
  if (!nccl) {
    WS_ASSIGN_OR_RETURN(mine.address, transport_->LocalAddress());
    if (transport_->capabilities().target_progress) {
      progress_ = std::make_unique<ProgressThread>(*transport_);
    }
  }
  WS_ASSIGN_OR_RETURN(session_, AgentSession::Join(options, job_, mine.id));
  // A bad destination fails every rank of the job (it is aborted), naming the tensor.
  if (!tensors_ok.ok()) return session_->AbortJob(tensors_ok);
  WS_RETURN_IF_ERROR(session_->Exchange(mine).status());
  if (nccl) {
    Result<std::unique_ptr<NcclReceiver>> receiver =
        NcclReceiver::Create(job_, rank, destinations, cuda_device);
    if (!receiver.ok()) return session_->AbortJob(receiver.status());
    nccl_receiver_ = std::move(*receiver);
    WS_ASSIGN_OR_RETURN(nccl_, NcclCommunicator::Create(
                                   *session_->rendezvous().context().client, options.job_id,
                                   "broadcast", 1 + rank, 1 + job_.inference_world(), cuda_device,
                                   control::DeadlineIn(options.join_timeout_s),
                                   [this] { return session_->CheckJob(); }));
  }
  push_ = std::make_unique<push::InferencePush>(session_->rendezvous(), options.push,
                                                std::move(agent_options.hooks));
  if (session_->rejoined()) {
    WS_RETURN_IF_ERROR(push_->Rejoin(control::DeadlineIn(options.join_timeout_s)));
  }
  if (!agent_options.admin_token.empty()) {
    push::AdminOptions admin = options.admin;  // admin.listen, admin.io_timeout
    admin.token = agent_options.admin_token;
    if (!agent_options.admin_listen.empty()) admin.listen = agent_options.admin_listen;
    WS_ASSIGN_OR_RETURN(admin_, push::AdminServer::Start(admin, push::AdminHandlersFor(*push_)));
  }
  return Status::Ok();
}

Status InferenceAgent::Impl::CheckExpertMap(const std::vector<int64_t>& expert_map) const {
  if (expert_map.empty()) return Status::Ok();
  for (const auto& [layer, experts] : ExpertMap()) {
    if (experts != expert_map) {
      std::string planned;
      for (int64_t e : experts) planned += StrCat(planned.empty() ? "" : ",", e);
      return InvalidArgument("inference ", rank_, ": the engine's expert map differs from the "
                             "plan's placement for ", layer, " (plan: [", planned, "], ",
                             job_.plan.options.inference.ToString(), ")");
    }
  }
  return Status::Ok();
}

std::map<std::string, std::vector<int64_t>> InferenceAgent::Impl::ExpertMap() const {
  std::map<std::string, std::vector<int64_t>> out;
  const int local = rank_ % job_.plan.options.inference.ranks();
  for (const PlannedTensor& tensor : job_.plan.tensors) {
    if (!tensor.shape.stacked || tensor.layouts[local].empty()) continue;
    const std::string& name = tensor.shape.name;
    out[name.substr(0, name.rfind('.'))] = tensor.layouts[local].parts;
  }
  return out;
}

Result<std::optional<PushReport>> InferenceAgent::Impl::ServeOnePush(double await_timeout_s) {
  PushReport report;
  const int64_t await_start = WallMicros();
  // Awaited in slices, so a job another rank aborted (a trainer whose set-up failed) ends the
  // wait at once with that rank's reason instead of at the timeout.
  const auto until = control::DeadlineIn(await_timeout_s);
  std::optional<uint64_t> step;
  while (!step) {
    WS_ASSIGN_OR_RETURN(step, push_->AwaitPush(std::min(until, control::DeadlineIn(1.0))));
    if (step || control::Clock::now() >= until) break;
    WS_RETURN_IF_ERROR(session_->CheckNotAborted().WithContext(StrCat("inference ", rank_)));
  }
  if (!step) return std::optional<PushReport>();
  report.step = *step;
  report.spans.push_back({"await+pause", await_start, WallMicros() - await_start});
  const auto start = control::Clock::now();
  if (progress_) progress_->SetActive(true);
  Status s = push_->StartTransfer();
  if (s.ok() && nccl_) {
    // Receive every full source tensor, then convert into the registered tensors.
    Status received;
    {
      SpanTimer span(report.spans, "broadcast");
      received = nccl_receiver_->Receive(*nccl_, control::DeadlineIn(transfer_timeout_s_));
    }
    if (received.ok()) {
      SpanTimer span(report.spans, "convert");
      received = nccl_receiver_->Convert();
    }
    SpanTimer span(report.spans, "receive");
    s = push_->FinishTransfer(received);
  } else {
    SpanTimer span(report.spans, "receive");
    if (s.ok()) s = push_->FinishTransfer();
  }
  if (progress_) progress_->SetActive(false);
  WS_RETURN_IF_ERROR(s);
  {
    SpanTimer span(report.spans, "commit");
    WS_RETURN_IF_ERROR(push_->Commit(*step));
  }
  report.bytes = job_.plan.inference_bytes[rank_];
  report.seconds = std::chrono::duration<double>(control::Clock::now() - start).count();
  return std::optional<PushReport>(std::move(report));
}

Result<std::unique_ptr<InferenceAgent>> InferenceAgent::Create(
    const AgentOptions& options, int rank, std::map<std::string, TensorView> destinations,
    InferenceAgentOptions agent_options) {
  auto impl = std::make_unique<Impl>();
  WS_RETURN_IF_ERROR(
      impl->Init(options, rank, std::move(destinations), std::move(agent_options)));
  return std::unique_ptr<InferenceAgent>(new InferenceAgent(std::move(impl)));
}

InferenceAgent::InferenceAgent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InferenceAgent::~InferenceAgent() {
  if (impl_->admin_) impl_->admin_->Stop();
}
Result<std::optional<PushReport>> InferenceAgent::ServeOnePush(double await_timeout_s) {
  return impl_->ServeOnePush(await_timeout_s);
}
Status InferenceAgent::Pause() { return impl_->push_->Pause(); }
Status InferenceAgent::Resume(bool force) { return impl_->push_->Resume(force); }
push::InferenceSnapshot InferenceAgent::Snapshot() const { return impl_->push_->Snapshot(); }
std::string InferenceAgent::admin_address() const {
  return impl_->admin_ ? impl_->admin_->address() : std::string();
}
int InferenceAgent::rank() const { return impl_->rank_; }
std::map<std::string, std::vector<int64_t>> InferenceAgent::ExpertMap() const {
  return impl_->ExpertMap();
}

}  // namespace weightsync::agent
