// AgentSession: one agent's membership of a job. Connects to the store, starts its heartbeat and
// a liveness watcher, joins the rendezvous (the plan's hash is the job's spec hash, so ranks that
// computed different plans are refused at once), and runs the setup exchange: every rank
// publishes its transport address and registered regions, and checks everyone else's.
//
// Setup payload (JSON, one per rank, under <job>/agent/setup/<role>/<rank>):
//   {"plan": hash, "transport": backend, "incarnation": random hex, "address": hex(PeerAddress),
//    "regions": {name: {"dtype": "float8_e4m3fn", "shape": [..], "descriptor": hex}}}
// and its incarnation alone under <job>/agent/incarnation/<role>/<rank>, so ranks can notice a
// restarted peer (a new incarnation) with one small listing per push. At start every rank
// publishes, then meets the others in round "agent-setup" and reads all setups; a restarted rank
// (it rejoined, see control::Rendezvous) publishes and reads without the round, and the trainers
// reconnect to it at their next push (ChangedSetups).
// Trainers publish their gather buffer as region "gather" (when they own gathered units);
// inference ranks one region per destination tensor. A rank that finds a mismatch (another plan,
// another backend, a destination tensor of the wrong size or dtype) aborts the job with a message
// naming the rank and tensor, so every rank fails before any byte moves.
//
// Threading: one thread (the agent's) uses a session.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent_options.h"
#include "agent/job_plan.h"
#include "control/liveness.h"
#include "control/rendezvous.h"
#include "transport/descriptor.h"

namespace weightsync::agent {

struct PublishedRegion {
  DType dtype = DType::kU8;
  Shape shape;
  transport::RegionDescriptor descriptor;
};

struct SetupInfo {
  control::ParticipantId id;
  std::string plan_hash;
  std::string backend;
  std::string incarnation;  // new for every process: a restarted rank has another
  transport::PeerAddress address;
  std::map<std::string, PublishedRegion> regions;
};

std::string EncodeSetup(const SetupInfo& info);
Result<SetupInfo> DecodeSetup(std::string_view payload, control::ParticipantId from);

class AgentSession {
 public:
  static Result<std::unique_ptr<AgentSession>> Join(const AgentOptions& options,
                                                    const JobPlan& job, control::ParticipantId id);
  ~AgentSession();
  AgentSession(const AgentSession&) = delete;
  AgentSession& operator=(const AgentSession&) = delete;

  // Publishes `mine` and returns every rank's setup (trainers by rank, then inference), after
  // checking plan hashes, backends and every inference rank's regions against the plan. Any
  // mismatch aborts the job (every rank fails) and is returned.
  Result<std::vector<SetupInfo>> Exchange(SetupInfo mine);

  // The setups of ranks whose incarnation changed since this session last read them (restarted
  // ranks), checked like Exchange's; each rank reads them again at its next call.
  Result<std::vector<SetupInfo>> ChangedSetups();

  bool rejoined() const { return rendezvous_->rejoined(); }

  // OK while every rank is alive and the job was not aborted; otherwise why (kAborted). For
  // waits outside the store (NCCL) that must end early when a peer is gone.
  Status CheckJob() const;
  // The abort key only: a rank that failed its set-up aborted the job (its reason is the value).
  Status CheckNotAborted() const;

  // Aborts the job with `reason` (every waiting rank fails with it) and returns it as an error.
  Status AbortJob(const Status& reason);

  control::Rendezvous& rendezvous() { return *rendezvous_; }
  control::ParticipantId id() const { return id_; }
  const JobPlan& job() const { return job_; }
  const AgentOptions& options() const { return options_; }

 private:
  AgentSession(const AgentOptions& options, const JobPlan& job, control::ParticipantId id)
      : options_(options), job_(job), id_(id) {}
  Status CheckSetup(const std::vector<SetupInfo>& everyone) const;
  Result<SetupInfo> ReadSetup(control::ParticipantId id, control::Deadline deadline);

  const AgentOptions options_;
  const JobPlan& job_;
  const control::ParticipantId id_;
  std::unique_ptr<control::StoreClient> client_;
  std::unique_ptr<control::Heartbeat> heartbeat_;
  std::unique_ptr<control::LivenessWatcher> watcher_;
  std::unique_ptr<control::Rendezvous> rendezvous_;
  std::map<control::ParticipantId, std::string> incarnations_;  // as last read
  std::string backend_;                                          // this rank's
};

}  // namespace weightsync::agent
