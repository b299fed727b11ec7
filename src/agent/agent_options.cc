#include "agent/agent_options.h"

namespace weightsync::agent {

Result<AgentOptions> AgentOptions::FromConfig(const Config& config) {
  AgentOptions options;
  WS_ASSIGN_OR_RETURN(options.store, control::StoreClientOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(options.transport, config.GetString("agent.transport"));
  WS_ASSIGN_OR_RETURN(options.mode, config.GetString("agent.mode"));
  if (options.mode != "write" && options.mode != "nccl") {
    return InvalidArgument("agent.mode must be write or nccl, not '", options.mode, "'");
  }
  WS_ASSIGN_OR_RETURN(options.transport_options, transport::OptionsFromConfig(config));
  WS_ASSIGN_OR_RETURN(options.push, push::PushOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(options.admin, push::AdminOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(options.liveness, control::LivenessOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(options.join_timeout_s, config.GetSeconds("agent.join_timeout"));
  WS_ASSIGN_OR_RETURN(int64_t threads, config.GetCount("agent.convert_threads"));
  options.convert_threads = static_cast<int>(threads);
  PlanOptions& plan = options.plan;
  WS_ASSIGN_OR_RETURN(uint64_t budget, config.GetBytes("plan.staging_budget"));
  WS_ASSIGN_OR_RETURN(uint64_t unit, config.GetBytes("plan.unit_bytes"));
  WS_ASSIGN_OR_RETURN(uint64_t min_shard, config.GetBytes("plan.min_shard_bytes"));
  WS_ASSIGN_OR_RETURN(uint64_t write_cost, config.GetBytes("plan.write_cost_bytes"));
  WS_ASSIGN_OR_RETURN(plan.rebalance_tolerance_percent, config.GetCount("plan.rebalance_tolerance"));
  plan.staging_budget = static_cast<int64_t>(budget);
  plan.unit_bytes = static_cast<int64_t>(unit);
  plan.min_shard_bytes = static_cast<int64_t>(min_shard);
  plan.write_cost_bytes = static_cast<int64_t>(write_cost);
  return options;
}

}  // namespace weightsync::agent
