// InferenceAgent: one inference rank's side of weightsync. It registers the engine's real
// parameter memory (one region per destination tensor, once), joins the job, and then serves
// pushes: pause hook, receive (trainers write straight into the registered tensors), post-update
// hooks, commit, resume hook (push/inference_push.h has the states and the torn rule).
//
// Destination tensors are named and shaped as the plan's target format holds them on this rank
// (agent/job_plan.h: DestinationsOf); a tensor of the wrong dtype or shape is refused before the
// job starts, naming it. With expert parallelism the rank's experts, in local order, must be the
// plan's placement (`expert_map`, when given, is checked against it).
//
// Threading: Create, ServeOnePush from one thread (the rank's push thread); Pause, Resume and
// Snapshot from any thread (the HTTP admin endpoint calls them).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_options.h"
#include "agent/push_report.h"
#include "push/inference_push.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

struct InferenceAgentOptions {
  push::InferenceHooks hooks;
  // Global expert ids this rank holds, in local order (empty: not checked).
  std::vector<int64_t> expert_map;
  // Serve the HTTP admin endpoint (/status, /pause, /resume) with this token; empty: no endpoint.
  std::string admin_token;
  // Where it listens; empty: admin.listen (AgentOptions::admin).
  std::string admin_listen;
};

class InferenceAgent {
 public:
  // `rank` is global: replica * (tp * dp) + rank inside the engine.
  static Result<std::unique_ptr<InferenceAgent>> Create(
      const AgentOptions& options, int rank, std::map<std::string, TensorView> destinations,
      InferenceAgentOptions agent_options = {});
  ~InferenceAgent();
  InferenceAgent(const InferenceAgent&) = delete;
  InferenceAgent& operator=(const InferenceAgent&) = delete;

  // Waits up to `await_timeout_s` for the next push and serves it; nullopt when none came.
  // Errors: the push failed (this rank is then torn until a later push commits).
  Result<std::optional<PushReport>> ServeOnePush(double await_timeout_s);

  Status Pause();
  Status Resume(bool force);
  push::InferenceSnapshot Snapshot() const;
  // The admin endpoint's "host:port", or "" without one.
  std::string admin_address() const;
  int rank() const;
  // The global expert ids of each expert-parallel destination's local parts, by tensor name
  // prefix (the layer): what `weightsync demo --dump` records as weightsync.expert_map.
  std::map<std::string, std::vector<int64_t>> ExpertMap() const;

  class Impl;

 private:
  explicit InferenceAgent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightsync::agent
