#include "demo_flags.h"

#include <set>

#include "plan/model_dims.h"

namespace weightsync::cli {
namespace {

constexpr const char* kDefaultPreset = "glm5_tiny";

// The spec serving a preset's dimensions (glm5_tiny -> glm_moe_dsa).
Result<std::string> PresetFamily(const std::string& preset) {
  WS_ASSIGN_OR_RETURN(ModelDims dims, PresetDims(preset));
  return ModelSpecForType(dims.model_type);
}

// The first spec of `model`'s lineage that serves some preset ("" if none): glm_moe_dsa for
// glm_moe_dsa (not deepseek_v3, which it extends), and for a user spec extending it.
std::string ModelFamily(const ModelSpec& model) {
  for (const std::string& name : model.lineage) {
    for (const std::string& preset : PresetNames()) {
      Result<std::string> family = PresetFamily(preset);
      if (family.ok() && *family == name) return name;
    }
  }
  return "";
}

// The preset of `family` with the fewest parameters: the demo's size.
Result<std::string> SmallestPreset(const std::string& family, const std::string& model) {
  std::string best;
  int64_t best_parameters = 0;
  for (const std::string& preset : PresetNames()) {
    Result<std::string> preset_family = PresetFamily(preset);
    if (!preset_family.ok() || *preset_family != family) continue;
    const int64_t parameters = ParameterCount(*PresetDims(preset));
    if (best.empty() || parameters < best_parameters) best = preset, best_parameters = parameters;
  }
  if (best.empty()) {
    std::set<std::string> families;
    for (const std::string& preset : PresetNames()) families.insert(*PresetFamily(preset));
    std::string known;
    for (const std::string& f : families) known += (known.empty() ? "" : ", ") + f;
    return InvalidArgument("--model ", model,
                           ": no preset has dimensions for it (the presets are "
                           "models ",
                           known, ")");
  }
  return best;
}

}  // namespace

Status ResolveModelAndPreset(DemoFlags& f) {
  if (f.model.empty()) {
    if (f.preset.empty()) f.preset = kDefaultPreset;
    WS_ASSIGN_OR_RETURN(f.model, PresetFamily(f.preset));
    return Status::Ok();
  }
  WS_ASSIGN_OR_RETURN(ModelSpecLibrary library, ModelSpecLibrary::FromEnvironment());
  WS_ASSIGN_OR_RETURN(ModelSpec model, library.Load(f.model));
  const std::string family = ModelFamily(model);
  if (f.preset.empty()) {
    WS_ASSIGN_OR_RETURN(f.preset, SmallestPreset(family, f.model));
    return Status::Ok();
  }
  WS_ASSIGN_OR_RETURN(std::string preset_family, PresetFamily(f.preset));
  if (preset_family != family) {
    return InvalidArgument("--model ", f.model, " and --preset ", f.preset,
                           " disagree: the preset's tensors are those of model ", preset_family,
                           "; give one of them, or a matching pair");
  }
  return Status::Ok();
}

void AddDemoFlags(CLI::App& cmd, DemoFlags& f) {
  cmd.add_option("--model", f.model,
                 "Model spec name or .json file (default: the preset's; without --preset, "
                 "glm_moe_dsa)");
  cmd.add_option("--preset", f.preset,
                 "Model dimensions: " + PresetNamesText() +
                     " (default: the smallest of --model's family; without --model, glm5_tiny)");
  cmd.add_option("--source-format", f.source_format, "The trainers' tensor names (spec format)");
  cmd.add_option("--trainers", f.trainers, "Trainer processes (FSDP ranks)")
      ->check(CLI::Range(1, 64));
  cmd.add_option("--trainer-ep", f.trainer_ep,
                 "Expert parallel degree of the trainers (divides --trainers; torchtitan's rank "
                 "order: ranks 0..N-1 form one EP group)")
      ->check(CLI::Range(1, 64));
  cmd.add_option("--inference", f.inference, "Inference processes per engine")
      ->check(CLI::Range(1, 64));
  cmd.add_flag("--expert-parallel", f.expert_parallel,
               "Experts split over an engine's ranks, non-expert tensors replicated on each");
  cmd.add_option("--replicas", f.replicas, "Inference engines")->check(CLI::Range(1, 16));
  cmd.add_option("--pushes", f.pushes, "Pushes (training steps)")->check(CLI::Range(1, 1000));
  cmd.add_option("--seed", f.seed, "Seed of the generated weights");
  cmd.add_option("--transport", f.transport, "auto, ucx, cuda_ipc");
  cmd.add_option("--mode", f.mode,
                 "write (trainers write converted weights) or nccl (rank 0 "
                 "broadcasts full tensors, inference ranks convert)")
      ->check(CLI::IsMember({"write", "nccl"}));
  cmd.add_option("--timeout", f.timeout_s, "Deadline of each push phase and of joining (seconds)");
  cmd.add_option("--device", f.device,
                 "Where the tensors live: cpu, or cuda (one GPU per rank, "
                 "shared round-robin when there are fewer GPUs than ranks)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd.add_option("--verify", f.verify, "Verify after every push, or only after the last")
      ->check(CLI::IsMember({"every", "last"}));
  cmd.add_option("--layers", f.layers, "Layers of the model (default: the preset's)");
  cmd.add_option("--dense-layers", f.dense_layers,
                 "Leading dense layers (default: the preset's), with --layers");
  cmd.add_option("--dump", f.dump, "Write source and destination tensors of every push here");
  cmd.add_option("--kill-inference", f.kill_inference,
                 "Fault drill: kill this inference rank while it receives push --kill-at-step, "
                 "restart it, and expect the next push to repair it");
  cmd.add_option("--kill-at-step", f.kill_at_step, "The push of --kill-inference");
}

std::vector<std::string> DemoFlagArgs(const DemoFlags& f) {
  std::vector<std::string> args = {"--model",         f.model,
                                   "--preset",        f.preset,
                                   "--source-format", f.source_format,
                                   "--trainers",      std::to_string(f.trainers),
                                   "--trainer-ep",    std::to_string(f.trainer_ep),
                                   "--inference",     std::to_string(f.inference),
                                   "--replicas",      std::to_string(f.replicas),
                                   "--pushes",        std::to_string(f.pushes),
                                   "--seed",          std::to_string(f.seed),
                                   "--transport",     f.transport,
                                   "--mode",          f.mode,
                                   "--timeout",       std::to_string(f.timeout_s),
                                   "--device",        f.device,
                                   "--verify",        f.verify,
                                   "--layers",        std::to_string(f.layers),
                                   "--dense-layers",  std::to_string(f.dense_layers)};
  if (f.expert_parallel) args.push_back("--expert-parallel");
  if (!f.dump.empty()) args.insert(args.end(), {"--dump", f.dump});
  if (f.kill_inference >= 0) {
    args.insert(args.end(), {"--kill-inference", std::to_string(f.kill_inference), "--kill-at-step",
                             std::to_string(f.kill_at_step)});
  }
  return args;
}

Result<agent::AgentOptions> DemoAgentOptions(const DemoFlags& f, const std::string& job_id,
                                             const std::string& store_address,
                                             const std::string& token) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(agent::AgentOptions options, agent::AgentOptions::FromConfig(config));
  options.job_id = job_id;
  options.store.address = store_address;
  options.store.token = token;
  options.model = f.model;
  WS_ASSIGN_OR_RETURN(options.dims, PresetDims(f.preset));
  if (f.layers > 0) options.dims.layers = f.layers;
  if (f.dense_layers >= 0) options.dims.first_k_dense = f.dense_layers;
  options.plan.source_format = f.source_format;
  options.plan.target_format = "vllm";
  options.plan.trainer.fsdp = f.trainers;
  options.plan.trainer.ep = f.trainer_ep;
  InferenceParallelism& inference = options.plan.inference;
  inference.replicas = f.replicas;
  if (f.expert_parallel) {
    inference.dp = f.inference;
    inference.expert_parallel = true;
  } else {
    inference.tp = f.inference;
  }
  if (f.transport != "auto") options.transport = f.transport;
  options.mode = f.mode;
  options.push.pause_timeout_s = f.timeout_s;
  options.push.transfer_timeout_s = f.timeout_s;
  options.push.commit_timeout_s = f.timeout_s;
  options.join_timeout_s = f.timeout_s;
  return options;
}

}  // namespace weightsync::cli
