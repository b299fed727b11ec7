// `weightsync demo-worker`: one rank of a `weightsync demo` job, spawned by the driver (hidden
// from --help). A trainer generates its step's weights and pushes; an inference rank serves each
// push into its own memory and verifies every byte against the reference conversion. Each push
// ends in one JSON line on stdout for the driver; errors go to stderr and the exit code.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/inference_agent.h"
#include "agent/trainer_agent.h"
#include "commands.h"
#include "convert/cuda/device_ops.h"
#include "demo/demo_reference.h"
#include "demo/demo_weights.h"
#include "demo_flags.h"
#include "io/safetensors_writer.h"

namespace weightsync::cli {
namespace {

using nlohmann::json;

struct WorkerFlags {
  DemoFlags demo;
  std::string role;
  int rank = 0;
  std::string store;
  std::string job;
  bool restarted = false;  // a second incarnation, started by the driver after --kill-inference
};

json SpansJson(const std::vector<agent::PhaseSpan>& spans) {
  json out = json::array();
  for (const auto& s : spans) out.push_back({{"name", s.name}, {"ts", s.start_us}, {"dur", s.duration_us}});
  return out;
}

void Emit(const json& line) { std::cout << line.dump() << std::endl; }

// Writes `tensors` (name -> view) to `path` atomically, with `metadata`.
Status DumpTensors(const std::filesystem::path& path,
                   const std::map<std::string, TensorView>& tensors,
                   const SafetensorsMetadata& metadata) {
  std::filesystem::create_directories(path.parent_path());
  std::vector<TensorDecl> decls;
  for (const auto& [name, view] : tensors) decls.push_back({name, view.dtype, view.shape});
  SafetensorsWriterOptions options;
  options.metadata = metadata;
  options.overwrite = true;
  WS_ASSIGN_OR_RETURN(SafetensorsWriter writer, SafetensorsWriter::Create(path, decls, options));
  for (const auto& [name, view] : tensors) {
    WS_ASSIGN_OR_RETURN(TensorView out, writer.Tensor(name));
    std::memcpy(out.data, view.data, view.nbytes());
  }
  return writer.Commit();
}

// --device cuda: a GPU copy of a set of host tensors (cudaMalloc each, as an engine's parameters
// would be), refreshed from the host or read back to it.
class DeviceMirror {
 public:
  ~DeviceMirror() {
    for (auto& [name, view] : device_) DeviceFree(view.data);
  }
  Status Create(const std::map<std::string, TensorView>& host, int device) {
    WS_RETURN_IF_ERROR(SetCudaDevice(device));
    host_ = host;
    for (const auto& [name, view] : host) {
      WS_ASSIGN_OR_RETURN(void* data, DeviceAlloc(view.nbytes()));
      device_[name] = TensorView::Contiguous(data, view.shape, view.dtype,
                                             Device{DeviceKind::kCuda, device});
    }
    return Upload();
  }
  Status Upload() {
    for (const auto& [name, view] : host_) {
      WS_RETURN_IF_ERROR(CopyHostToDevice(device_[name].data, view.data, view.nbytes()));
    }
    return Status::Ok();
  }
  Status Download() {
    for (const auto& [name, view] : host_) {
      WS_RETURN_IF_ERROR(CopyDeviceToHost(view.data, device_[name].data, view.nbytes()));
    }
    return Status::Ok();
  }
  const std::map<std::string, TensorView>& views() const { return device_; }

 private:
  std::map<std::string, TensorView> host_;
  std::map<std::string, TensorView> device_;
};

// The GPU of a rank: all trainers, then all inference ranks, round-robin over the GPUs.
Result<int> DeviceOf(const WorkerFlags& flags, const agent::JobPlan& job) {
  WS_ASSIGN_OR_RETURN(int gpus, CudaDeviceCount());
  if (gpus < 1) return Unavailable("--device cuda: no CUDA device is visible");
  const int index = flags.role == "trainer" ? flags.rank : job.trainer_world() + flags.rank;
  return index % gpus;
}

Status RunTrainer(const WorkerFlags& flags, const agent::AgentOptions& options) {
  WS_ASSIGN_OR_RETURN(agent::JobPlan job, agent::BuildJobPlan(options));
  // CPU: the full weights in host memory, this rank's shards viewed in them. GPU: only this
  // rank's shards, generated on its GPU (real model sizes do not fit a host copy per process).
  const bool gpu = flags.demo.device == "cuda";
  std::unique_ptr<demo::DemoWeights> host;
  std::unique_ptr<demo::DeviceDemoWeights> device;
  std::map<std::string, TensorView> shards;
  if (gpu) {
    WS_ASSIGN_OR_RETURN(int index, DeviceOf(flags, job));
    WS_ASSIGN_OR_RETURN(device,
                        demo::DeviceDemoWeights::Create(job, flags.demo.seed, index, flags.rank));
    WS_RETURN_IF_ERROR(device->Fill(1));
    shards = device->views();
  } else {
    host = std::make_unique<demo::DemoWeights>(job, flags.demo.seed);
    host->Fill(1);
    WS_ASSIGN_OR_RETURN(shards, host->ShardViews(flags.rank));
  }
  WS_ASSIGN_OR_RETURN(auto trainer, agent::TrainerAgent::Create(options, flags.rank, shards));
  for (int step = 1; step <= flags.demo.pushes; ++step) {
    if (step > 1) {  // the shard views see the new values in place
      if (gpu) WS_RETURN_IF_ERROR(device->Fill(step));
      if (!gpu) host->Fill(step);
    }
    if (!flags.demo.dump.empty() && flags.rank == 0) {
      demo::DemoWeights full(job, flags.demo.seed);  // the dump is always the host's generator
      full.Fill(step);
      WS_RETURN_IF_ERROR(DumpTensors(std::filesystem::path(flags.demo.dump) / "source" /
                                         StrCat("step_", step, ".safetensors"),
                                     full.full(), {{"format", "pt"}}));
    }
    Result<agent::PushReport> pushed = trainer->Push(step);
    if (!pushed.ok()) {  // the push failed everywhere; the next one repairs it
      Emit({{"role", "trainer"}, {"rank", flags.rank}, {"step", step}, {"failed", true},
            {"error", pushed.status().ToString()}, {"spans", json::array()}});
      continue;
    }
    const agent::PushReport& report = *pushed;
    Emit({{"role", "trainer"}, {"rank", flags.rank}, {"step", step}, {"bytes", report.bytes},
          {"writes", report.writes}, {"gather_bytes", report.gather_bytes},
          {"seconds", report.seconds}, {"convert_seconds", report.convert_seconds},
          {"spans", SpansJson(report.spans)}});
  }
  if (gpu && flags.rank == 0) {
    // The hardware's limit for the same bytes: one peer copy of what each inference GPU receives
    // from this rank's GPU, all at once, measured here after the pushes.
    WS_ASSIGN_OR_RETURN(int source, DeviceOf(flags, job));
    std::map<int, size_t> per_gpu;
    for (int r = 0; r < job.inference_world(); ++r) {
      WorkerFlags inference = flags;
      inference.role = "inference";
      inference.rank = r;
      WS_ASSIGN_OR_RETURN(int target, DeviceOf(inference, job));
      per_gpu[target] += static_cast<size_t>(job.plan.inference_bytes[r]);
    }
    if (per_gpu.contains(source)) {
      // A copy within one GPU is no limit for a push between processes sharing it.
      Emit({{"role", "trainer"}, {"rank", flags.rank},
            {"speed_of_light_skipped",
             StrCat("an inference rank shares trainer 0's GPU ", source,
                    ": run with one GPU per process for the ratio")}});
      return Status::Ok();
    }
    WS_ASSIGN_OR_RETURN(double seconds, TimePeerCopies(source, {per_gpu.begin(), per_gpu.end()}, 5));
    Emit({{"role", "trainer"}, {"rank", flags.rank}, {"speed_of_light_seconds", seconds},
          {"speed_of_light_bytes", job.plan.inference_bytes.empty() ? 0 : [&] {
             int64_t total = 0;
             for (int64_t b : job.plan.inference_bytes) total += b;
             return total;
           }()}});
  }
  return Status::Ok();
}

// Every byte of this rank's `memory` (host copies of its tensors) against the reference
// conversion of step `step`'s full weights: on the CPU, or generated and converted on the rank's
// GPU with --device cuda.
Status Verify(const WorkerFlags& flags, const agent::JobPlan& job, uint64_t step,
              const std::map<std::string, TensorView>& memory) {
  Result<demo::ReferenceDestinations> reference = Internal("no reference");
  if (flags.demo.device == "cuda") {
    WS_ASSIGN_OR_RETURN(int index, DeviceOf(flags, job));
    WS_ASSIGN_OR_RETURN(auto full, demo::DeviceDemoWeights::Create(job, flags.demo.seed, index, -1));
    WS_RETURN_IF_ERROR(full->Fill(step));
    reference = demo::ReferenceDestinations::ComputeOnDevice(job, full->views());
  } else {
    demo::DemoWeights full(job, flags.demo.seed);
    full.Fill(step);
    reference = demo::ReferenceDestinations::Compute(job, full.full(), 1);
  }
  WS_RETURN_IF_ERROR(reference.status());
  return reference->Verify(job, flags.rank, memory);
}

Status RunInference(const WorkerFlags& flags, const agent::AgentOptions& options) {
  WS_ASSIGN_OR_RETURN(agent::JobPlan job, agent::BuildJobPlan(options));
  // The engine's parameter memory: one buffer per destination tensor, filled with a pattern no
  // conversion produces everywhere, so an unwritten byte cannot pass verification by luck.
  std::map<std::string, std::vector<uint8_t>> memory;
  std::map<std::string, TensorView> views;
  for (const agent::DestinationTensor& d : job.DestinationsOf(flags.rank)) {
    auto& buffer = memory[d.name];
    buffer.assign(d.bytes(), 0xA5);
    views[d.name] = TensorView::Contiguous(buffer.data(), d.shape, d.dtype);
  }
  const bool gpu = flags.demo.device == "cuda";
  DeviceMirror mirror;
  if (gpu) {
    WS_ASSIGN_OR_RETURN(int device, DeviceOf(flags, job));
    WS_RETURN_IF_ERROR(mirror.Create(views, device));
  }
  WS_ASSIGN_OR_RETURN(auto engine, agent::InferenceAgent::Create(options, flags.rank,
                                                                 gpu ? mirror.views() : views));
  json expert_map = json::object();
  for (const auto& [layer, experts] : engine->ExpertMap()) expert_map[layer] = experts;
  // --kill-inference: this rank dies (SIGKILL) the moment step --kill-at-step starts receiving.
  std::atomic<bool> done{false};
  std::thread killer;
  if (flags.demo.kill_inference == flags.rank && !flags.restarted) {
    killer = std::thread([&] {
      while (!done) {
        const push::InferenceSnapshot snapshot = engine->Snapshot();
        if (snapshot.state == push::InferenceState::kReceiving &&
            snapshot.step == static_cast<uint64_t>(flags.demo.kill_at_step)) {
          ::raise(SIGKILL);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  const auto stop_killer = [&] {
    done = true;
    if (killer.joinable()) killer.join();
  };
  Status status;
  for (uint64_t last = 0; last < static_cast<uint64_t>(flags.demo.pushes);) {
    Result<std::optional<agent::PushReport>> served = engine->ServeOnePush(flags.demo.timeout_s);
    if (!served.ok()) {  // torn at this step until a later push commits
      const push::InferenceSnapshot snapshot = engine->Snapshot();
      last = snapshot.step.value_or(last + 1);
      Emit({{"role", "inference"}, {"rank", flags.rank}, {"step", last}, {"failed", true},
            {"state", push::InferenceStateName(snapshot.state)},
            {"error", served.status().ToString()}, {"spans", json::array()}});
      continue;
    }
    if (!served->has_value()) {
      status = DeadlineExceeded("inference ", flags.rank, ": no push came in ",
                                flags.demo.timeout_s, " s");
      break;
    }
    agent::PushReport& report = **served;
    last = report.step;
    const int64_t verify_start = agent::WallMicros();
    const bool check = flags.demo.verify == "every" ||
                       report.step == static_cast<uint64_t>(flags.demo.pushes);
    Status verified;
    if (gpu && (check || !flags.demo.dump.empty())) verified = mirror.Download();
    if (check && verified.ok()) verified = Verify(flags, job, report.step, views);
    report.spans.push_back({"verify", verify_start, agent::WallMicros() - verify_start});
    if (!flags.demo.dump.empty()) {
      status = DumpTensors(std::filesystem::path(flags.demo.dump) /
                               StrCat("inference_", flags.rank) /
                               StrCat("step_", report.step, ".safetensors"),
                           views, {{"weightsync.expert_map", expert_map.dump()}});
      if (!status.ok()) break;
    }
    Emit({{"role", "inference"}, {"rank", flags.rank}, {"step", report.step},
          {"bytes", report.bytes}, {"seconds", report.seconds}, {"checked", check},
          {"verified", verified.ok()},
          {"error", verified.ok() ? "" : verified.ToString()}, {"spans", SpansJson(report.spans)}});
    if (!verified.ok()) {
      status = verified;
      break;
    }
  }
  stop_killer();
  return status;
  return Status::Ok();
}

}  // namespace

void AddDemoWorkerCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<WorkerFlags>();
  CLI::App* cmd = app.add_subcommand("demo-worker", "");  // hidden: spawned by `weightsync demo`
  cmd->group("");
  AddDemoFlags(*cmd, flags->demo);
  cmd->add_option("--role", flags->role)->required()->check(CLI::IsMember({"trainer", "inference"}));
  cmd->add_option("--rank", flags->rank)->required();
  cmd->add_option("--store", flags->store)->required();
  cmd->add_option("--job", flags->job)->required();
  cmd->add_flag("--restarted", flags->restarted);
  cmd->callback([flags, &exit_code] {
    const char* token = std::getenv("WEIGHTSYNC_STORE_TOKEN");
    Result<agent::AgentOptions> options =
        DemoAgentOptions(flags->demo, flags->job, flags->store, token ? token : "");
    Status status = options.status();
    if (status.ok()) {
      status = flags->role == "trainer" ? RunTrainer(*flags, *options)
                                        : RunInference(*flags, *options);
    }
    if (!status.ok()) {
      std::cerr << flags->role << " " << flags->rank << ": " << status.ToString() << std::endl;
      exit_code = 1;
    }
  });
}

}  // namespace weightsync::cli
