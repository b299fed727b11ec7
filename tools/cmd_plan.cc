// `weightsync plan`: computes the transfer plan for a model and cluster shape, validates it, and
// predicts a push's time with the cluster simulator (src/plan/simulator.h says what it models).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "core/config.h"
#include "plan/gpu_memory.h"
#include "plan/parallelism_text.h"
#include "plan/simulator.h"
#include "plan/transfer_plan.h"

namespace weightsync::cli {
namespace {

struct PlanFlags {
  std::string model;
  std::string preset;
  std::string config;
  std::string source_format = "hf";
  std::string target_format = "vllm";
  std::string trainer = "fsdp=8";
  std::string inference = "tp=1";
  std::string network;
  std::string staging_budget;
  std::string unit_bytes;
  std::string min_shard_bytes;
  std::string gpu_memory = "h100";
  std::vector<std::string> spec_dirs;
  bool json = false;
};

Status ParseNetwork(const std::string& text, Config& config, int& gpus_per_node) {
  WS_ASSIGN_OR_RETURN(auto v, ParseKeyValueList(text, "--network",
                                                {"nic", "nvlink", "hbm", "gpus-per-node",
                                                 "write-overhead", "barrier"}));
  const std::pair<const char*, const char*> keys[] = {{"nic", "plan.sim.nic_bandwidth"},
                                                      {"nvlink", "plan.sim.nvlink_bandwidth"},
                                                      {"hbm", "plan.sim.hbm_bandwidth"},
                                                      {"write-overhead", "plan.sim.write_overhead"},
                                                      {"barrier", "plan.sim.barrier"}};
  for (auto [key, option] : keys) {
    if (v.count(key)) WS_RETURN_IF_ERROR(config.Set(option, v[key]));
  }
  WS_ASSIGN_OR_RETURN(gpus_per_node, CountIn(v, "gpus-per-node", 8, "--network"));
  return Status::Ok();
}

Result<NetworkModel> NetworkFromConfig(const Config& config) {
  NetworkModel net;
  WS_ASSIGN_OR_RETURN(std::string nic, config.GetString("plan.sim.nic_bandwidth"));
  WS_ASSIGN_OR_RETURN(net.nic_bytes_per_second, ParseRate(nic));
  WS_ASSIGN_OR_RETURN(std::string nvlink, config.GetString("plan.sim.nvlink_bandwidth"));
  WS_ASSIGN_OR_RETURN(net.nvlink_bytes_per_second, ParseRate(nvlink));
  WS_ASSIGN_OR_RETURN(std::string hbm, config.GetString("plan.sim.hbm_bandwidth"));
  WS_ASSIGN_OR_RETURN(net.hbm_bytes_per_second, ParseRate(hbm));
  WS_ASSIGN_OR_RETURN(net.write_overhead_seconds, config.GetSeconds("plan.sim.write_overhead"));
  WS_ASSIGN_OR_RETURN(net.barrier_seconds, config.GetSeconds("plan.sim.barrier"));
  return net;
}

std::string Gb(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

std::string Fixed(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// Dimensions: a preset or a config.json.
Result<ModelDims> LoadDims(const PlanFlags& flags) {
  if (flags.preset.empty() == flags.config.empty()) {
    return InvalidArgument("give exactly one of --preset and --config");
  }
  if (!flags.preset.empty()) return PresetDims(flags.preset);
  std::ifstream in(flags.config, std::ios::binary);
  if (!in) return NotFound("cannot read ", flags.config);
  std::stringstream text;
  text << in.rdbuf();
  return DimsFromHfConfig(text.str(), flags.config);
}

// --model, or the spec serving the dimensions' model_type.
Result<ModelSpec> LoadModel(const PlanFlags& flags, const ModelDims& dims) {
  std::string model_name = flags.model;
  if (model_name.empty()) {
    WS_ASSIGN_OR_RETURN(model_name, ModelSpecForType(dims.model_type));
  }
  WS_ASSIGN_OR_RETURN(ModelSpecLibrary library, ModelSpecLibrary::FromEnvironment());
  for (const auto& dir : flags.spec_dirs) WS_RETURN_IF_ERROR(library.AddDirectory(dir));
  return library.Load(model_name);
}

// The plan.* options, with --staging-budget, --unit-bytes and --min-shard-bytes applied.
Status ApplySizeFlags(const PlanFlags& flags, Config& config) {
  const std::pair<const std::string*, const char*> sizes[] = {
      {&flags.staging_budget, "plan.staging_budget"},
      {&flags.unit_bytes, "plan.unit_bytes"},
      {&flags.min_shard_bytes, "plan.min_shard_bytes"}};
  for (auto [value, option] : sizes) {
    if (!value->empty()) WS_RETURN_IF_ERROR(config.Set(option, *value));
  }
  return Status::Ok();
}

Result<PlanOptions> OptionsFromFlags(const PlanFlags& flags, Config& config, int& gpus_per_node) {
  PlanOptions options;
  options.source_format = flags.source_format;
  options.target_format = flags.target_format;
  WS_ASSIGN_OR_RETURN(options.trainer, ParseTrainerParallelism(flags.trainer));
  WS_ASSIGN_OR_RETURN(options.inference, ParseInferenceParallelism(flags.inference));
  WS_RETURN_IF_ERROR(ParseNetwork(flags.network, config, gpus_per_node));
  options.trainer.gpus_per_node = gpus_per_node;
  options.inference.gpus_per_node = gpus_per_node;
  options.staging_budget = static_cast<int64_t>(*config.GetBytes("plan.staging_budget"));
  options.unit_bytes = static_cast<int64_t>(*config.GetBytes("plan.unit_bytes"));
  options.min_shard_bytes = static_cast<int64_t>(*config.GetBytes("plan.min_shard_bytes"));
  options.write_cost_bytes = static_cast<int64_t>(*config.GetBytes("plan.write_cost_bytes"));
  options.rebalance_tolerance_percent = *config.GetCount("plan.rebalance_tolerance");
  return options;
}

// Everything the output shows.
struct PlanResult {
  ModelSpec model;
  std::string dims_origin;
  TransferPlan plan;
  NetworkModel network;
  int gpus_per_node = 8;
  SimulationReport report;
  int64_t gpu_memory_bytes = 0;
  std::vector<int> ranks_over_memory;  // inference ranks whose weights exceed gpu_memory_bytes

  double balance() const {
    const SimulationReport& r = report;
    return r.trainer_nic_bytes_mean ? static_cast<double>(r.trainer_nic_bytes_max) /
                                          static_cast<double>(r.trainer_nic_bytes_mean)
                                    : 0.0;
  }
  double ratio() const {
    const SimulationReport& r = report;
    return r.speed_of_light_seconds > 0 ? r.predicted_seconds / r.speed_of_light_seconds : 0.0;
  }
};

Result<PlanResult> ComputePlan(const PlanFlags& flags) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_RETURN_IF_ERROR(ApplySizeFlags(flags, config));
  PlanResult out;
  WS_ASSIGN_OR_RETURN(ModelDims dims, LoadDims(flags));
  out.dims_origin = flags.preset.empty() ? flags.config : "preset " + flags.preset;
  WS_ASSIGN_OR_RETURN(out.model, LoadModel(flags, dims));
  WS_ASSIGN_OR_RETURN(PlanOptions options, OptionsFromFlags(flags, config, out.gpus_per_node));
  WS_ASSIGN_OR_RETURN(out.network, NetworkFromConfig(config));
  WS_ASSIGN_OR_RETURN(out.plan, BuildTransferPlan(out.model, dims, options));
  out.report = Simulate(out.plan, out.network);
  WS_ASSIGN_OR_RETURN(out.gpu_memory_bytes, ParseGpuMemory(flags.gpu_memory));
  out.ranks_over_memory = InferenceRanksOverMemory(out.plan, out.gpu_memory_bytes);
  return out;
}

void PrintJson(const PlanResult& p) {
  const SimulationReport& r = p.report;
  const PlanOptions& options = p.plan.options;
  nlohmann::json out = {
      {"model", p.model.name},
      {"model_spec_hash", p.model.hash},
      {"dimensions", p.dims_origin},
      {"source_format", options.source_format},
      {"target_format", options.target_format},
      {"trainer", options.trainer.ToString()},
      {"inference", options.inference.ToString()},
      {"plan_hash", p.plan.hash},
      {"destination_tensors", p.plan.tensors.size()},
      {"convert_units", r.units},
      {"gathered_units", r.gathered_units},
      {"gather_bytes_total", r.gather_bytes_total},
      {"bytes_total", r.bytes_total},
      {"inference_bytes_held_per_gpu_max", r.inference_bytes_held_per_gpu_max},
      {"inference_bytes_held_per_gpu_mean", r.inference_bytes_held_per_gpu_mean},
      {"gpu_memory_bytes", p.gpu_memory_bytes},
      {"inference_ranks_over_gpu_memory", p.ranks_over_memory},
      {"trainer_nic_bytes_max", r.trainer_nic_bytes_max},
      {"trainer_nic_bytes_mean", r.trainer_nic_bytes_mean},
      {"trainer_nic_max_over_mean", p.balance()},
      {"sending_trainer_ranks", r.sending_trainer_ranks},
      {"writes_per_trainer_rank_max", r.writes_per_trainer_rank_max},
      {"writes_total", r.writes_total},
      {"staging_bytes_per_trainer_rank_max", r.staging_bytes_per_trainer_rank_max},
      {"receiver_seconds", r.receiver_seconds},
      {"convert_seconds_max", r.convert_seconds_max},
      {"speed_of_light_seconds", r.speed_of_light_seconds},
      {"predicted_seconds", r.predicted_seconds},
      {"predicted_over_speed_of_light", p.ratio()},
      {"coverage_ok", r.coverage_ok},
  };
  if (!r.coverage_ok) out["coverage_error"] = r.coverage_error;
  std::cout << out.dump(2) << "\n";
}

void PrintSummary(const PlanResult& p) {
  const SimulationReport& r = p.report;
  const PlanOptions& options = p.plan.options;
  const NetworkModel& n = p.network;
  std::cout << "model        " << p.model.name << " (" << p.dims_origin << "), "
            << options.source_format << " -> " << options.target_format << ", spec " << p.model.hash
            << "\n"
            << "trainer      " << options.trainer.ToString() << " (" << options.trainer.world()
            << " GPUs, " << r.sending_trainer_ranks << " send)\n"
            << "inference    " << options.inference.ToString() << " (" << options.inference.replicas
            << " x " << options.inference.ranks() << " GPUs)\n"
            << "network      nic " << Fixed(n.nic_bytes_per_second / 1e9, 1) << " GB/s, nvlink "
            << Fixed(n.nvlink_bytes_per_second / 1e9, 1) << " GB/s, hbm "
            << Fixed(n.hbm_bytes_per_second / 1e12, 2) << " TB/s, "
            << Fixed(n.write_overhead_seconds * 1e6, 1) << " us/write, " << p.gpus_per_node
            << " GPUs/node\n"
            << "plan         " << p.plan.hash << ": " << p.plan.tensors.size()
            << " destination tensors, " << r.units << " convert units (" << r.gathered_units
            << " gathered, " << Gb(r.gather_bytes_total) << " gathered source)\n\n"
            << "| metric | value |\n|---|---|\n"
            << "| bytes per push (all replicas) | " << Gb(r.bytes_total) << " |\n"
            << "| inference_bytes_held_per_gpu_max | " << Gb(r.inference_bytes_held_per_gpu_max)
            << " (mean " << Gb(r.inference_bytes_held_per_gpu_mean) << "; GPU memory "
            << Gb(p.gpu_memory_bytes) << ") |\n"
            << "| trainer_nic_bytes_max / mean | " << Gb(r.trainer_nic_bytes_max) << " / "
            << Gb(r.trainer_nic_bytes_mean) << " = " << Fixed(p.balance()) << " |\n"
            << "| writes_per_trainer_rank_max | " << r.writes_per_trainer_rank_max << " (total "
            << r.writes_total << ") |\n"
            << "| staging_bytes_per_trainer_rank_max | " << Gb(r.staging_bytes_per_trainer_rank_max)
            << " |\n"
            << "| convert time, busiest rank | " << Fixed(r.convert_seconds_max) << " s |\n"
            << "| speed_of_light_seconds | " << Fixed(r.speed_of_light_seconds) << " |\n"
            << "| predicted_seconds | " << Fixed(r.predicted_seconds) << " (" << Fixed(p.ratio(), 3)
            << "x speed of light) |\n"
            << "| coverage_ok | " << (r.coverage_ok ? "true" : "false") << " |\n";
  if (!r.coverage_ok) std::cout << "\ncoverage: " << r.coverage_error << "\n";
}

// On stderr in both output modes, so a script reading --json still shows it to a person.
void WarnAboutMemory(const PlanResult& p) {
  if (p.ranks_over_memory.empty()) return;
  std::cerr << "weightsync plan: warning: the weights of inference rank"
            << (p.ranks_over_memory.size() > 1 ? "s " : " ") << RankRangesText(p.ranks_over_memory)
            << " (up to " << Gb(p.report.inference_bytes_held_per_gpu_max)
            << " per GPU) exceed the GPU memory (" << Gb(p.gpu_memory_bytes)
            << ", --gpu-memory): they cannot load; use more inference "
            << "GPUs (tp, ep) or GPUs with more memory\n";
}

// Exit status: 0 when the plan validates, 2 for invalid input (flags, config.json, model spec)
// or a plan that fails coverage, 1 for other errors.
int RunPlan(const PlanFlags& flags) {
  Result<PlanResult> result = ComputePlan(flags);
  if (!result.ok()) {
    std::cerr << "weightsync plan: " << result.status().ToString() << "\n";
    return result.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  (flags.json ? PrintJson : PrintSummary)(*result);
  WarnAboutMemory(*result);
  return result->report.coverage_ok ? 0 : 2;
}

}  // namespace

void AddPlanCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<PlanFlags>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Compute and validate the transfer plan for a model and cluster, and predict a push");
  cmd->add_option("--model", flags->model,
                  "Model spec name or .json file (default: from the preset / config model_type)");
  cmd->add_option("--preset", flags->preset, "Dimensions: " + PresetNamesText());
  cmd->add_option("--config", flags->config, "Dimensions: a Hugging Face config.json");
  cmd->add_option("--source-format", flags->source_format,
                  "Trainer tensor names (spec source format)")
      ->capture_default_str();
  cmd->add_option("--target-format", flags->target_format, "Destination format")
      ->capture_default_str();
  cmd->add_option("--trainer", flags->trainer, "fsdp=N,ep=N,hsdp=N,senders=replica0|all")
      ->capture_default_str();
  cmd->add_option("--inference", flags->inference,
                  "tp=N,dp=N,ep=N,replicas=N,placement=linear|round_robin (ep = tp x dp)")
      ->capture_default_str();
  cmd->add_option("--network", flags->network,
                  "nic=50GB/s,nvlink=450GB/s,gpus-per-node=8,hbm=3TB/s,write-overhead=5us,"
                  "barrier=1ms (defaults: plan.sim.* options)");
  cmd->add_option("--staging-budget", flags->staging_budget, "Overrides plan.staging_budget");
  cmd->add_option("--unit-bytes", flags->unit_bytes, "Overrides plan.unit_bytes");
  cmd->add_option("--min-shard-bytes", flags->min_shard_bytes, "Overrides plan.min_shard_bytes");
  cmd->add_option("--gpu-memory", flags->gpu_memory,
                  "Memory of one inference GPU: " + KnownGpuMemoryText() +
                      " or a size (96GB); warns about ranks whose weights exceed it")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) {
            Result<int64_t> bytes = ParseGpuMemory(text);
            return bytes.ok() ? std::string() : bytes.status().message();
          },
          "GPU|SIZE"));
  cmd->add_option("--spec-dir", flags->spec_dirs, "Extra directories of model spec files");
  cmd->add_flag("--json", flags->json, "Print one JSON object");
  cmd->callback([flags, &exit_code] { exit_code = RunPlan(*flags); });
}

}  // namespace weightsync::cli
