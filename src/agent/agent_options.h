// What every rank of a weightsync job is configured with: the job's identity and store, the model
// and both sides' parallelism (from which every rank computes the same transfer plan), the
// transport, and the deadlines.
//
// Threading: plain values.
#pragma once

#include <string>
#include <vector>

#include "control/liveness.h"
#include "control/store_client.h"
#include "core/config.h"
#include "plan/model_dims.h"
#include "plan/transfer_plan.h"
#include "push/admin_http.h"
#include "push/push_types.h"
#include "transport/transport.h"

namespace weightsync::agent {

struct AgentOptions {
  std::string job_id = "weightsync";
  control::StoreClientOptions store;  // address "host:port" and token

  // The model: a spec name (or .json path), extra spec directories, and its dimensions (a preset
  // or a config.json, see plan/model_dims.h).
  std::string model;
  std::vector<std::string> spec_dirs;
  ModelDims dims;
  // Source and target formats, both sides' parallelism and the planner's knobs.
  PlanOptions plan;

  // "auto" (cuda_ipc between GPU tensors, ucx otherwise), "ucx", "cuda_ipc" or "local" (one
  // process only). Every rank must resolve to the same backend; the rendezvous checks it.
  std::string transport = DefaultString("agent.transport");
  transport::TransportOptions transport_options;

  // "write": every trainer rank converts its units and writes them into the inference ranks'
  // memory (the product); "nccl": trainer rank 0 broadcasts full tensors and inference ranks
  // convert (the baseline, agent/nccl_mode.h).
  std::string mode = DefaultString("agent.mode");

  push::PushOptions push;
  push::AdminOptions admin;  // admin.*: an inference agent's endpoint, served when given a token
  control::LivenessOptions liveness;
  // agent.join_timeout: joining and the setup exchange.
  double join_timeout_s = DefaultSeconds("agent.join_timeout");
  // agent.convert_threads: CPU conversion threads (0: all cores).
  int convert_threads = static_cast<int>(DefaultCount("agent.convert_threads"));

  // Everything but the job's identity, model and parallelism, from the config table
  // (push.*, admin.*, control.*, transport.*, agent.*, plan.*). The store address and token are
  // left to the caller (or agent.store_address / WEIGHTSYNC_STORE_TOKEN, see cluster_env.h).
  static Result<AgentOptions> FromConfig(const Config& config);
};

}  // namespace weightsync::agent
