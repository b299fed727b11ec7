// WS_OPTIONS (the JSON object of the header) -> AgentOptions. Strict: unknown keys and values of
// the wrong JSON type are errors naming the key, so a misspelt option never falls back silently.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "capi/capi_internal.h"
#include "plan/parallelism_text.h"

namespace weightsync::capi {
namespace {

using nlohmann::json;

Result<std::string> StringAt(const json& object, const char* key, std::string fallback) {
  auto it = object.find(key);
  if (it == object.end()) return fallback;
  if (!it->is_string()) return InvalidArgument("options: \"", key, "\" must be a string");
  return it->get<std::string>();
}

Result<ModelDims> DimsOf(const json& object) {
  WS_ASSIGN_OR_RETURN(std::string preset, StringAt(object, "preset", ""));
  WS_ASSIGN_OR_RETURN(std::string path, StringAt(object, "config_json", ""));
  if (preset.empty() == path.empty()) {
    return InvalidArgument("options: give exactly one of \"preset\" and \"config_json\"");
  }
  if (!preset.empty()) return PresetDims(preset);
  std::ifstream file(path);
  if (!file) return NotFound("options: config_json ", path, " cannot be read");
  std::stringstream text;
  text << file.rdbuf();
  return DimsFromHfConfig(text.str(), path);
}

// "config": {"push.transfer_timeout": "30s", "agent.convert_threads": 2}
Status ApplyConfig(const json& object, Config& config) {
  auto it = object.find("config");
  if (it == object.end()) return Status::Ok();
  if (!it->is_object()) return InvalidArgument("options: \"config\" must be an object");
  for (const auto& [key, value] : it->items()) {
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_number() || value.is_boolean()) {
      text = value.dump();
    } else {
      return InvalidArgument("options: config \"", key, "\" must be a string, number or bool");
    }
    WS_RETURN_IF_ERROR(config.Set(key, text).WithContext("options: config"));
  }
  return Status::Ok();
}

Status ParseInferenceKeys(const json& object, agent::InferenceAgentOptions& out) {
  WS_ASSIGN_OR_RETURN(out.admin_token, StringAt(object, "admin_token", ""));
  WS_ASSIGN_OR_RETURN(out.admin_listen, StringAt(object, "admin_listen", out.admin_listen));
  auto it = object.find("expert_map");
  if (it == object.end()) return Status::Ok();
  if (!it->is_array()) return InvalidArgument("options: \"expert_map\" must be an array");
  for (const json& e : *it) {
    if (!e.is_number_integer()) {
      return InvalidArgument("options: \"expert_map\" holds ", e.dump(), ", not an integer");
    }
    out.expert_map.push_back(e.get<int64_t>());
  }
  return Status::Ok();
}

}  // namespace

Result<ParsedOptions> ParseOptions(const char* json_text, bool inference_keys) {
  WS_RETURN_IF_ERROR(NotNull(json_text, "options_json"));
  json object = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return InvalidArgument("options: not a JSON object: ", std::string(json_text).substr(0, 200));
  }
  static const char* const kCommon[] = {
      "job_id",    "store_address", "store_token",   "model",         "spec_dirs",
      "preset",    "config_json",   "source_format", "target_format", "trainer",
      "inference", "transport",     "config"};
  // Known everywhere, read only by inference agents: a job passes the same options to every
  // rank and to its JobPlan.
  static const char* const kInference[] = {"admin_token", "admin_listen", "expert_map"};
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (const char* k : kCommon) known |= key == k;
    for (const char* k : kInference) known |= key == k;
    if (!known) return InvalidArgument("options: unknown key \"", key, "\"");
  }

  WS_ASSIGN_OR_RETURN(Config config, GlobalConfig());
  WS_RETURN_IF_ERROR(ApplyConfig(object, config));
  ParsedOptions parsed;
  WS_ASSIGN_OR_RETURN(parsed.agent, agent::AgentOptions::FromConfig(config));
  agent::AgentOptions& a = parsed.agent;
  WS_ASSIGN_OR_RETURN(a.job_id, StringAt(object, "job_id", a.job_id));
  WS_ASSIGN_OR_RETURN(a.store.address, StringAt(object, "store_address", ""));
  WS_ASSIGN_OR_RETURN(a.store.token, StringAt(object, "store_token", ""));
  WS_ASSIGN_OR_RETURN(a.model, StringAt(object, "model", ""));
  if (auto it = object.find("spec_dirs"); it != object.end()) {
    if (!it->is_array()) return InvalidArgument("options: \"spec_dirs\" must be an array");
    for (const json& dir : *it) {
      if (!dir.is_string()) return InvalidArgument("options: \"spec_dirs\" must hold strings");
      a.spec_dirs.push_back(dir.get<std::string>());
    }
  }
  WS_ASSIGN_OR_RETURN(a.dims, DimsOf(object));
  WS_ASSIGN_OR_RETURN(a.plan.source_format, StringAt(object, "source_format", "hf"));
  WS_ASSIGN_OR_RETURN(a.plan.target_format, StringAt(object, "target_format", "vllm"));
  WS_ASSIGN_OR_RETURN(std::string trainer, StringAt(object, "trainer", ""));
  WS_ASSIGN_OR_RETURN(std::string inference, StringAt(object, "inference", ""));
  WS_ASSIGN_OR_RETURN(a.plan.trainer, ParseTrainerParallelism(trainer));
  WS_ASSIGN_OR_RETURN(a.plan.inference, ParseInferenceParallelism(inference));
  WS_ASSIGN_OR_RETURN(a.transport, StringAt(object, "transport", a.transport));
  if (inference_keys) WS_RETURN_IF_ERROR(ParseInferenceKeys(object, parsed.inference));
  return parsed;
}

}  // namespace weightsync::capi
