#include "agent/agent_session.h"

#include <nlohmann/json.hpp>
#include <random>

#include "control/collective.h"
#include "core/log.h"

namespace weightsync::agent {
namespace {

using nlohmann::json;

std::string Hex(const std::vector<uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

Result<std::vector<uint8_t>> Unhex(std::string_view text, std::string_view what) {
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (text.size() % 2 != 0) return DataLoss(what, ": odd number of hex digits");
  std::vector<uint8_t> out(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = digit(text[2 * i]), lo = digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return DataLoss(what, ": not hex");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace

std::string EncodeSetup(const SetupInfo& info) {
  json regions = json::object();
  for (const auto& [name, region] : info.regions) {
    regions[name] = {{"dtype", DTypeTorchName(region.dtype)},
                     {"shape", region.shape},
                     {"descriptor", Hex(region.descriptor.Serialize())}};
  }
  return json{{"plan", info.plan_hash},
              {"transport", info.backend},
              {"incarnation", info.incarnation},
              {"address", Hex(info.address.Serialize())},
              {"regions", regions}}
      .dump();
}

Result<SetupInfo> DecodeSetup(std::string_view payload, control::ParticipantId from) {
  const std::string what = StrCat("setup message of ", from.ToString());
  SetupInfo info;
  info.id = from;
  try {
    const json j = json::parse(payload);
    info.plan_hash = j.at("plan").get<std::string>();
    info.backend = j.at("transport").get<std::string>();
    info.incarnation = j.at("incarnation").get<std::string>();
    WS_ASSIGN_OR_RETURN(auto address, Unhex(j.at("address").get<std::string>(), what));
    WS_ASSIGN_OR_RETURN(info.address, transport::PeerAddress::Deserialize(address));
    for (const auto& [name, r] : j.at("regions").items()) {
      PublishedRegion region;
      const auto dtype = DTypeFromTorchName(r.at("dtype").get<std::string>());
      if (!dtype) return DataLoss(what, ": region ", name, " has an unknown dtype");
      region.dtype = *dtype;
      region.shape = r.at("shape").get<Shape>();
      WS_ASSIGN_OR_RETURN(auto bytes, Unhex(r.at("descriptor").get<std::string>(), what));
      WS_ASSIGN_OR_RETURN(region.descriptor, transport::RegionDescriptor::Deserialize(bytes));
      info.regions.emplace(name, std::move(region));
    }
  } catch (const json::exception& e) {
    return DataLoss(what, " is malformed: ", e.what());
  }
  return info;
}

Result<std::unique_ptr<AgentSession>> AgentSession::Join(const AgentOptions& options,
                                                         const JobPlan& job,
                                                         control::ParticipantId id) {
  std::unique_ptr<AgentSession> session(new AgentSession(options, job, id));
  const control::Deadline deadline = control::DeadlineIn(options.join_timeout_s);
  WS_ASSIGN_OR_RETURN(session->client_, control::StoreClient::Connect(options.store, deadline));
  control::Membership me;
  me.job_id = options.job_id;
  me.id = id;
  me.trainer_world_size = job.trainer_world();
  me.inference_world_size = job.inference_world();
  me.spec_hash = job.plan.hash;
  me.take_over_dead_holder = true;  // a restarted rank rejoins; its own heartbeat starts after
  WS_ASSIGN_OR_RETURN(session->rendezvous_,
                      control::Rendezvous::Join(*session->client_, me, deadline));
  WS_ASSIGN_OR_RETURN(session->heartbeat_, control::Heartbeat::Start(options.store, options.job_id,
                                                                     id, options.liveness,
                                                                     deadline));
  WS_ASSIGN_OR_RETURN(session->watcher_, control::LivenessWatcher::Start(
                                             options.store, options.job_id, options.liveness,
                                             deadline));
  session->rendezvous_->SetLivenessWatcher(session->watcher_.get());
  return session;
}

AgentSession::~AgentSession() {
  if (heartbeat_) heartbeat_->Stop();
}

Status AgentSession::CheckJob() const {
  WS_RETURN_IF_ERROR(watcher_->CheckAlive(rendezvous_->participants()));
  return CheckNotAborted();
}

Status AgentSession::CheckNotAborted() const {
  Result<std::string> aborted =
      client_->Get(control::AbortKey(options_.job_id), control::DeadlineIn(5));
  if (aborted.ok()) return Aborted("job ", options_.job_id, " was aborted: ", *aborted);
  if (aborted.status().code() == StatusCode::kNotFound) return Status::Ok();
  return aborted.status();
}

Status AgentSession::AbortJob(const Status& reason) {
  Status aborted = rendezvous_->Abort(reason.ToString(), control::DeadlineIn(5));
  if (!aborted.ok()) {
    Log(LogLevel::kWarning, "could not abort job ", options_.job_id, ": ", aborted.ToString());
  }
  return reason;
}

namespace {

std::string SetupKey(std::string_view job, control::ParticipantId id) {
  return StrCat(control::JobPrefix(job), "agent/setup/", control::ParticipantKey(id));
}
std::string IncarnationPrefix(std::string_view job) {
  return StrCat(control::JobPrefix(job), "agent/incarnation/");
}

}  // namespace

Result<SetupInfo> AgentSession::ReadSetup(control::ParticipantId id, control::Deadline deadline) {
  WS_ASSIGN_OR_RETURN(std::string payload,
                      client_->Get(SetupKey(options_.job_id, id), deadline));
  return DecodeSetup(payload, id);
}

Result<std::vector<SetupInfo>> AgentSession::Exchange(SetupInfo mine) {
  const control::Deadline deadline = control::DeadlineIn(options_.join_timeout_s);
  std::random_device random;
  mine.incarnation = StrCat(id_.ToString(), "/",
                            std::to_string(random()), std::to_string(random()));
  backend_ = mine.backend;
  WS_RETURN_IF_ERROR(client_->Set(SetupKey(options_.job_id, id_), EncodeSetup(mine), deadline));
  WS_RETURN_IF_ERROR(client_->Set(IncarnationPrefix(options_.job_id) + control::ParticipantKey(id_),
                                  mine.incarnation, deadline));
  // At start, wait until every rank has published; a restarted rank finds them all there.
  if (!rejoined()) {
    WS_RETURN_IF_ERROR(rendezvous_->Round("agent-setup", mine.incarnation, deadline).status());
  }
  std::vector<SetupInfo> everyone;
  for (const control::ParticipantId& id : rendezvous_->participants()) {
    Result<SetupInfo> info = ReadSetup(id, deadline);
    if (!info.ok()) return AbortJob(info.status());
    incarnations_[id] = info->incarnation;
    everyone.push_back(std::move(*info));
  }
  if (Status s = CheckSetup(everyone); !s.ok()) return AbortJob(s);
  return everyone;
}

Result<std::vector<SetupInfo>> AgentSession::ChangedSetups() {
  const control::Deadline deadline = control::DeadlineIn(options_.join_timeout_s);
  const std::string prefix = IncarnationPrefix(options_.job_id);
  WS_ASSIGN_OR_RETURN(auto listed, client_->List(prefix, deadline));
  std::vector<SetupInfo> changed;
  for (const control::KeyValue& entry : listed) {
    auto id = control::ParseParticipantKey(std::string_view(entry.key).substr(prefix.size()));
    if (!id.ok() || *id == id_ || incarnations_[*id] == entry.value) continue;
    WS_ASSIGN_OR_RETURN(SetupInfo info, ReadSetup(*id, deadline));
    // A restarted rank must still fit the job: same plan, same backend, the same regions.
    if (info.plan_hash != job_.plan.hash || info.backend != backend_) {
      return FailedPrecondition(id->ToString(), " restarted with plan ", info.plan_hash,
                                " and transport ", info.backend, "; the job's are ",
                                job_.plan.hash, " and ", backend_);
    }
    WS_RETURN_IF_ERROR(CheckSetup(std::vector<SetupInfo>{info}));
    incarnations_[*id] = info.incarnation;
    changed.push_back(std::move(info));
  }
  return changed;
}

Status AgentSession::CheckSetup(const std::vector<SetupInfo>& everyone) const {
  const SetupInfo& first = everyone.front();
  for (const SetupInfo& info : everyone) {
    if (info.plan_hash != first.plan_hash) {
      return FailedPrecondition(info.id.ToString(), " computed plan ", info.plan_hash, ", ",
                                first.id.ToString(), " plan ", first.plan_hash,
                                ": every rank must be given the same model and parallelism");
    }
    if (info.backend != first.backend) {
      return FailedPrecondition(info.id.ToString(), " uses transport ", info.backend, ", ",
                                first.id.ToString(), " uses ", first.backend,
                                ": set agent.transport to one backend on every rank");
    }
    if (info.id.role != control::Role::kInference) continue;
    const std::string who = info.id.ToString();
    for (const DestinationTensor& d : job_.DestinationsOf(info.id.rank)) {
      auto it = info.regions.find(d.name);
      if (it == info.regions.end()) {
        return FailedPrecondition(who, " did not register ", d.name);
      }
      const PublishedRegion& r = it->second;
      if (r.dtype != d.dtype || r.shape != d.shape ||
          r.descriptor.length < static_cast<uint64_t>(d.bytes())) {
        return FailedPrecondition(who, " registered ", d.name, " as ", DTypeTorchName(r.dtype),
                                  ShapeToString(r.shape), " (", r.descriptor.length,
                                  " bytes), the plan writes ", DTypeTorchName(d.dtype),
                                  ShapeToString(d.shape), " (", d.bytes(), " bytes)");
      }
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::agent
