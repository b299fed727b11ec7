// Parallelism written as text: "fsdp=8,ep=4" and "tp=2,dp=4,ep=8,replicas=2".
#include "plan/parallelism_text.h"

#include <sstream>

#include "core/config.h"

namespace weightsync {

// "a=1,b=two" -> {a: 1, b: two}; `what` names the flag in errors.
Result<std::map<std::string, std::string>> ParseKeyValueList(
    std::string_view text, std::string_view what, std::initializer_list<std::string_view> keys) {
  std::map<std::string, std::string> out;
  std::stringstream items{std::string(text)};
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    bool known = false;
    for (auto k : keys) known |= (k == key);
    if (eq == std::string::npos || !known) {
      std::string allowed;
      for (auto k : keys) allowed += StrCat(allowed.empty() ? "" : ", ", k);
      return InvalidArgument(what, ": '", item, "' is not key=value with a key in: ", allowed);
    }
    out[key] = item.substr(eq + 1);
  }
  return out;
}

Result<int> CountIn(const std::map<std::string, std::string>& values, const std::string& key,
                    int fallback, std::string_view what) {
  auto it = values.find(key);
  if (it == values.end()) return fallback;
  Result<int64_t> n = ParseCount(it->second);
  if (!n.ok() || *n < 1 || *n > (1 << 20)) {
    return InvalidArgument(what, ": ", key, "=", it->second, " is not a positive count");
  }
  return static_cast<int>(*n);
}

Result<TrainerParallelism> ParseTrainerParallelism(std::string_view text) {
  TrainerParallelism t;
  WS_ASSIGN_OR_RETURN(auto v,
                      ParseKeyValueList(text, "--trainer", {"fsdp", "ep", "hsdp", "senders"}));
  WS_ASSIGN_OR_RETURN(t.fsdp, CountIn(v, "fsdp", 1, "--trainer"));
  WS_ASSIGN_OR_RETURN(t.ep, CountIn(v, "ep", 1, "--trainer"));
  WS_ASSIGN_OR_RETURN(t.hsdp, CountIn(v, "hsdp", 1, "--trainer"));
  const std::string senders = v.count("senders") ? v["senders"] : "replica0";
  if (senders != "replica0" && senders != "all") {
    return InvalidArgument("--trainer: senders must be replica0 or all, not ", senders);
  }
  t.all_replicas_send = senders == "all";
  WS_RETURN_IF_ERROR(t.Validate());
  return t;
}

Result<InferenceParallelism> ParseInferenceParallelism(std::string_view text) {
  InferenceParallelism i;
  WS_ASSIGN_OR_RETURN(auto v, ParseKeyValueList(text, "--inference",
                                                {"tp", "dp", "ep", "replicas", "placement"}));
  WS_ASSIGN_OR_RETURN(i.tp, CountIn(v, "tp", 1, "--inference"));
  WS_ASSIGN_OR_RETURN(int ep, CountIn(v, "ep", 1, "--inference"));
  // vLLM's expert-parallel group is the whole engine (TP x DP): ep=N sizes the engine when dp is
  // not given.
  WS_ASSIGN_OR_RETURN(i.dp, CountIn(v, "dp", ep > 1 ? ep / i.tp : 1, "--inference"));
  WS_ASSIGN_OR_RETURN(i.replicas, CountIn(v, "replicas", 1, "--inference"));
  i.expert_parallel = ep > 1;
  if (i.expert_parallel && ep != i.ranks()) {
    return InvalidArgument("--inference: ep=", ep, " must equal tp x dp = ", i.ranks(),
                           " (vLLM spreads experts over the whole engine)");
  }
  const std::string placement = v.count("placement") ? v["placement"] : "linear";
  if (placement != "linear" && placement != "round_robin") {
    return InvalidArgument("--inference: placement must be linear or round_robin");
  }
  i.placement = placement == "linear" ? ExpertPlacement::kLinear : ExpertPlacement::kRoundRobin;
  WS_RETURN_IF_ERROR(i.Validate());
  return i;
}

}  // namespace weightsync
