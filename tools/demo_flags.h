// Flags shared by `weightsync demo` (the driver) and `weightsync demo-worker` (one trainer or
// inference rank, spawned by the driver), and the job options both derive from them.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "agent/agent_options.h"

namespace weightsync::cli {

struct DemoFlags {
  // Either implies the other (ResolveModelAndPreset); neither: glm_moe_dsa with glm5_tiny.
  std::string model;
  std::string preset;
  std::string source_format = "hf";
  int trainers = 2;
  int trainer_ep = 1;  // expert parallel degree of the trainers (divides trainers)
  int inference = 2;   // ranks per engine
  bool expert_parallel = false;
  int replicas = 1;
  int pushes = 3;
  uint64_t seed = 1;
  std::string transport = "auto";
  std::string mode = "write";  // agent.mode: write (the product) or nccl (the baseline)
  double timeout_s = 60;       // every push phase's deadline, and joining
  std::string dump;
  // "cpu": every tensor in host memory; "cuda": trainer shards and inference tensors on GPUs
  // (rank i of all trainers then all inference ranks on GPU i % GPUs), converted by the CUDA
  // kernels, written with cuda_ipc.
  std::string device = "cpu";
  // Verify after every push, or only after the last (timed runs of large models).
  std::string verify = "every";
  // Override the preset's layer count and its dense layers (0: keep), e.g. GLM-5 at its real
  // width with one dense and three MoE layers.
  int layers = 0;
  int dense_layers = -1;
  // Fault drill: inference rank `kill_inference` is killed (SIGKILL) while receiving push
  // `kill_at_step`, then restarted; -1: none.
  int kill_inference = -1;
  int kill_at_step = 2;
};

// Fills in whichever of --model and --preset is missing from the other, as `plan` does: a
// preset's model_type names the spec serving it, and a model alone gets the smallest preset of
// its family. A pair that disagree is an error naming both. A user spec extending a built-in one
// belongs to that one's family.
Status ResolveModelAndPreset(DemoFlags& flags);

// Registers the flags above on `cmd`.
void AddDemoFlags(CLI::App& cmd, DemoFlags& flags);
// The same flags as arguments, for the workers' command lines.
std::vector<std::string> DemoFlagArgs(const DemoFlags& flags);

// Agent options for a demo job: the config table (WEIGHTSYNC_* overrides) plus the flags.
// Parallelism: `trainers` FSDP ranks, `trainer_ep` of them per EP group (torchtitan's order);
// inference engines of `inference` ranks each, tensor parallel, or with --expert-parallel data
// parallel attention + expert parallel MoE (non-expert tensors replicated on every rank, experts
// split), `replicas` engines.
Result<agent::AgentOptions> DemoAgentOptions(const DemoFlags& flags, const std::string& job_id,
                                             const std::string& store_address,
                                             const std::string& token);

}  // namespace weightsync::cli
