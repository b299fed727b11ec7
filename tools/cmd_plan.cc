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
  std::vector<std::string> spec_dirs;
  bool json = false;
};

Status ParseNetwork(const std::string& text, Config& config, int& gpus_per_node) {
  WS_ASSIGN_OR_RETURN(
      auto v, ParseKeyValueList(text, "--network",
                        {"nic", "nvlink", "hbm", "gpus-per-node", "write-overhead", "barrier"}));
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

int RunPlan(const PlanFlags& flags) {
  auto fail = [](const Status& status) {
    std::cerr << "weightsync plan: " << status.ToString() << "\n";
    return 1;
  };
  Result<Config> config = Config::FromEnvironment();
  if (!config.ok()) return fail(config.status());
  const std::pair<const std::string*, const char*> sizes[] = {
      {&flags.staging_budget, "plan.staging_budget"},
      {&flags.unit_bytes, "plan.unit_bytes"},
      {&flags.min_shard_bytes, "plan.min_shard_bytes"}};
  for (auto [value, option] : sizes) {
    if (value->empty()) continue;
    if (Status s = config->Set(option, *value); !s.ok()) return fail(s);
  }

  // Dimensions: a preset or a config.json.
  if (flags.preset.empty() == flags.config.empty()) {
    return fail(InvalidArgument("give exactly one of --preset and --config"));
  }
  const std::string dims_origin = flags.preset.empty() ? flags.config : "preset " + flags.preset;
  Result<ModelDims> dims = [&]() -> Result<ModelDims> {
    if (!flags.preset.empty()) return PresetDims(flags.preset);
    std::ifstream in(flags.config, std::ios::binary);
    if (!in) return NotFound("cannot read ", flags.config);
    std::stringstream text;
    text << in.rdbuf();
    return DimsFromHfConfig(text.str(), flags.config);
  }();
  if (!dims.ok()) return fail(dims.status());
  std::string model_name = flags.model;
  if (model_name.empty()) {
    Result<std::string> name = ModelSpecForType(dims->model_type);
    if (!name.ok()) return fail(name.status());
    model_name = *name;
  }
  Result<ModelSpecLibrary> library = ModelSpecLibrary::FromEnvironment();
  if (!library.ok()) return fail(library.status());
  for (const auto& dir : flags.spec_dirs) {
    if (Status s = library->AddDirectory(dir); !s.ok()) return fail(s);
  }
  Result<ModelSpec> model = library->Load(model_name);
  if (!model.ok()) return fail(model.status());

  PlanOptions options;
  options.source_format = flags.source_format;
  options.target_format = flags.target_format;
  int gpus_per_node = 8;
  Result<TrainerParallelism> trainer = ParseTrainerParallelism(flags.trainer);
  if (!trainer.ok()) return fail(trainer.status());
  options.trainer = *trainer;
  Result<InferenceParallelism> inference = ParseInferenceParallelism(flags.inference);
  if (!inference.ok()) return fail(inference.status());
  options.inference = *inference;
  if (Status s = ParseNetwork(flags.network, *config, gpus_per_node); !s.ok()) return fail(s);
  options.trainer.gpus_per_node = gpus_per_node;
  options.inference.gpus_per_node = gpus_per_node;
  options.staging_budget = static_cast<int64_t>(*config->GetBytes("plan.staging_budget"));
  options.unit_bytes = static_cast<int64_t>(*config->GetBytes("plan.unit_bytes"));
  options.min_shard_bytes = static_cast<int64_t>(*config->GetBytes("plan.min_shard_bytes"));
  options.write_cost_bytes = static_cast<int64_t>(*config->GetBytes("plan.write_cost_bytes"));
  options.rebalance_tolerance_percent = *config->GetCount("plan.rebalance_tolerance");
  Result<NetworkModel> network = NetworkFromConfig(*config);
  if (!network.ok()) return fail(network.status());

  Result<TransferPlan> plan = BuildTransferPlan(*model, *dims, options);
  if (!plan.ok()) return fail(plan.status());
  const SimulationReport r = Simulate(*plan, *network);
  const double balance = r.trainer_nic_bytes_mean
                             ? static_cast<double>(r.trainer_nic_bytes_max) /
                                   static_cast<double>(r.trainer_nic_bytes_mean)
                             : 0.0;
  const double ratio =
      r.speed_of_light_seconds > 0 ? r.predicted_seconds / r.speed_of_light_seconds : 0.0;
  if (flags.json) {
    nlohmann::json out = {
        {"model", model->name},
        {"model_spec_hash", model->hash},
        {"dimensions", dims_origin},
        {"source_format", options.source_format},
        {"target_format", options.target_format},
        {"trainer", options.trainer.ToString()},
        {"inference", options.inference.ToString()},
        {"plan_hash", plan->hash},
        {"destination_tensors", plan->tensors.size()},
        {"convert_units", r.units},
        {"gathered_units", r.gathered_units},
        {"gather_bytes_total", r.gather_bytes_total},
        {"bytes_total", r.bytes_total},
        {"inference_bytes_held_per_gpu_max", r.inference_bytes_held_per_gpu_max},
        {"inference_bytes_held_per_gpu_mean", r.inference_bytes_held_per_gpu_mean},
        {"trainer_nic_bytes_max", r.trainer_nic_bytes_max},
        {"trainer_nic_bytes_mean", r.trainer_nic_bytes_mean},
        {"trainer_nic_max_over_mean", balance},
        {"sending_trainer_ranks", r.sending_trainer_ranks},
        {"writes_per_trainer_rank_max", r.writes_per_trainer_rank_max},
        {"writes_total", r.writes_total},
        {"staging_bytes_per_trainer_rank_max", r.staging_bytes_per_trainer_rank_max},
        {"receiver_seconds", r.receiver_seconds},
        {"convert_seconds_max", r.convert_seconds_max},
        {"speed_of_light_seconds", r.speed_of_light_seconds},
        {"predicted_seconds", r.predicted_seconds},
        {"predicted_over_speed_of_light", ratio},
        {"coverage_ok", r.coverage_ok},
    };
    if (!r.coverage_ok) out["coverage_error"] = r.coverage_error;
    std::cout << out.dump(2) << "\n";
  } else {
    const NetworkModel& n = *network;
    std::cout << "model        " << model->name << " (" << dims_origin << "), "
              << options.source_format << " -> " << options.target_format << ", spec "
              << model->hash << "\n"
              << "trainer      " << options.trainer.ToString() << " (" << options.trainer.world()
              << " GPUs, " << r.sending_trainer_ranks << " send)\n"
              << "inference    " << options.inference.ToString() << " ("
              << options.inference.replicas << " x " << options.inference.ranks() << " GPUs)\n"
              << "network      nic " << Fixed(n.nic_bytes_per_second / 1e9, 1) << " GB/s, nvlink "
              << Fixed(n.nvlink_bytes_per_second / 1e9, 1) << " GB/s, hbm "
              << Fixed(n.hbm_bytes_per_second / 1e12, 2) << " TB/s, "
              << Fixed(n.write_overhead_seconds * 1e6, 1) << " us/write, " << gpus_per_node
              << " GPUs/node\n"
              << "plan         " << plan->hash << ": " << plan->tensors.size()
              << " destination tensors, " << r.units << " convert units (" << r.gathered_units
              << " gathered, " << Gb(r.gather_bytes_total) << " gathered source)\n\n"
              << "| metric | value |\n|---|---|\n"
              << "| bytes per push (all replicas) | " << Gb(r.bytes_total) << " |\n"
              << "| inference_bytes_held_per_gpu_max | " << Gb(r.inference_bytes_held_per_gpu_max)
              << " (mean " << Gb(r.inference_bytes_held_per_gpu_mean) << ") |\n"
              << "| trainer_nic_bytes_max / mean | " << Gb(r.trainer_nic_bytes_max) << " / "
              << Gb(r.trainer_nic_bytes_mean) << " = " << Fixed(balance) << " |\n"
              << "| writes_per_trainer_rank_max | " << r.writes_per_trainer_rank_max << " (total "
              << r.writes_total << ") |\n"
              << "| staging_bytes_per_trainer_rank_max | "
              << Gb(r.staging_bytes_per_trainer_rank_max) << " |\n"
              << "| convert time, busiest rank | " << Fixed(r.convert_seconds_max) << " s |\n"
              << "| speed_of_light_seconds | " << Fixed(r.speed_of_light_seconds) << " |\n"
              << "| predicted_seconds | " << Fixed(r.predicted_seconds) << " (" << Fixed(ratio, 3)
              << "x speed of light) |\n"
              << "| coverage_ok | " << (r.coverage_ok ? "true" : "false") << " |\n";
    if (!r.coverage_ok) std::cout << "\ncoverage: " << r.coverage_error << "\n";
  }
  return r.coverage_ok ? 0 : 2;
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
  cmd->add_option("--spec-dir", flags->spec_dirs, "Extra directories of model spec files");
  cmd->add_flag("--json", flags->json, "Print one JSON object");
  cmd->callback([flags, &exit_code] { exit_code = RunPlan(*flags); });
}

}  // namespace weightsync::cli
