// `weightsync bench transport`: write throughput between two processes on this host.
//
// The writer fork/execs itself as the target (`--serve-fd`, hidden), receives the target's address
// and descriptor over a socketpair, then times `iters` writes of `size` bytes followed by one
// flush, like `ucx_perftest -t ucp_put_bw` (bench/transport.sh runs both and prints the ratio).
// The local backend cannot cross processes and runs writer and target in one process.
// --memory cuda (always for cuda_ipc; ucx with a CUDA-enabled UCX): both buffers are GPU memory (a
// staging pool each: plain cuMemAlloc), the writer on --device and the target on --peer-device
// (GPU 1 when there are two, else GPU 0); one-write runs also time an in-process device-to-device
// copy of the same size in the same run and print the ratio (target >= 0.95 for cuda_ipc). --count N posts N writes of --size per batch at consecutive offsets,
// for small-write throughput; cuda_ipc then also runs the same batches with per-write copies
// (transport.cuda_small_write_bytes = 0) and prints the speed-up of the batched kernel.
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "core/config.h"
#include "core/log.h"
#include "transport/cuda_ipc_transport.h"
#include "transport/socket_channel.h"
#include "transport/staging_pool.h"
#include "transport/transport.h"

namespace weightsync::cli {
namespace {

using namespace weightsync::transport;

struct BenchArgs {
  std::string backend = "ucx";
  std::string size_text = "64MiB";
  int iters = 100;
  int warmup = 5;
  bool json = false;
  std::string memory;  // "host" or "cuda"; "" = the backend's kind (cuda for cuda_ipc)
  std::string ucx_tls;
  std::string ucx_net_devices;
  int device = 0;
  int peer_device = -1;  // -1: GPU 1 when the host has two or more, else GPU 0
  uint64_t count = 1;    // writes per batch
  std::string cuda_small_write_bytes;  // overrides transport.cuda_small_write_bytes when set
  std::string pin;  // "W,T": the writer on CPU W, the target on CPU T; "" leaves the scheduler's
  int serve_fd = -1;
};

// Pins this process to CPU `which` (0: the writer's, 1: the target's) of --pin. Why: on a quiet
// many-core host the two processes' placement (same core's hyperthreads, one L2, two sockets)
// moves small-write throughput by a third from run to run, for ucx_perftest as much as for us;
// bench/transport.sh pins both tools the same way.
Status PinTo(const std::string& pin, int which) {
  if (pin.empty()) return Status::Ok();
  const auto comma = pin.find(',');
  const std::string cpu_text = which == 0 ? pin.substr(0, comma) : pin.substr(comma + 1);
  char* end = nullptr;
  const long cpu = std::strtol(cpu_text.c_str(), &end, 10);
  if (comma == std::string::npos || cpu_text.empty() || *end != '\0' || cpu < 0 ||
      cpu >= CPU_SETSIZE) {
    return InvalidArgument("--pin ", pin, ": expected WRITER_CPU,TARGET_CPU");
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<int>(cpu), &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return InvalidArgument("--pin ", pin, ": cannot run on CPU ", cpu, ": ", std::strerror(errno));
  }
  return Status::Ok();
}

bool OnGpu(const BenchArgs& args) { return args.memory == "cuda"; }

// Memory for one side of the benchmark: host memory from the transport's allocator (for UCX
// shared memory, as ucx_perftest uses, so puts over shm are one-sided copies), or a GPU staging
// pool (cuMemAlloc, registered).
struct BenchBuffer {
  std::unique_ptr<StagingPool> pool;
  RegionId region;
};

Result<BenchBuffer> MakeBuffer(Transport& t, const BenchArgs& args, uint64_t bytes, int device,
                               std::string_view name) {
  BenchBuffer b;
  if (OnGpu(args)) {
    WS_ASSIGN_OR_RETURN(b.pool, StagingPool::Create(t, PoolMemory::kCuda, bytes, std::string(name),
                                                    device));
    b.region = b.pool->region();
    return b;
  }
  WS_ASSIGN_OR_RETURN(b.region, t.AllocateAndRegister(bytes, name));
  WS_ASSIGN_OR_RETURN(void* host, t.RegionAddress(b.region));
  std::memset(host, 0x5A, bytes);  // touch every page before timing
  return b;
}

Result<std::unique_ptr<Transport>> MakeTransport(const BenchArgs& args, int32_t rank) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(TransportOptions options, OptionsFromConfig(config, rank));
  if (!args.ucx_tls.empty()) options.ucx_tls = args.ucx_tls;
  if (!args.ucx_net_devices.empty()) options.ucx_net_devices = args.ucx_net_devices;
  options.cuda_device = rank == 0 ? args.device : args.peer_device;
  if (!args.cuda_small_write_bytes.empty()) {
    WS_ASSIGN_OR_RETURN(options.cuda_small_write_bytes, ParseBytes(args.cuda_small_write_bytes));
  }
  return CreateTransport(args.backend, options);
}

// The target: registers a buffer, publishes it, progresses until told to exit.
Status Serve(const BenchArgs& args, uint64_t size) {
  SocketChannel channel(args.serve_fd);
  WS_RETURN_IF_ERROR(PinTo(args.pin, 1));
  WS_ASSIGN_OR_RETURN(auto t, MakeTransport(args, 1));
  WS_ASSIGN_OR_RETURN(BenchBuffer dst, MakeBuffer(*t, args, size * args.count, args.peer_device,
                                                  "bench.dst"));
  WS_ASSIGN_OR_RETURN(PeerAddress address, t->LocalAddress());
  WS_ASSIGN_OR_RETURN(RegionDescriptor descriptor, t->Export(dst.region));
  WS_RETURN_IF_ERROR(channel.Send(address.Serialize()));
  WS_RETURN_IF_ERROR(channel.Send(descriptor.Serialize()));
  if (!t->capabilities().target_progress) {
    // The writer's puts need nothing from this process (shared memory, CMA, verbs, GPU copies):
    // sleep instead of spinning, which on a small host would steal a core from the writer.
    while (!channel.Readable(1000)) {
    }
  } else {
    for (uint64_t spin = 1;; ++spin) {
      t->Progress();
      if (spin % 64 == 0 && channel.Readable()) break;  // any message (or EOF) ends the run
    }
  }
  if (dst.pool) return Status::Ok();  // the pool deregisters itself
  return t->Deregister(dst.region);
}

struct Target {
  pid_t pid = -1;
  SocketChannel channel;
  PeerAddress address;
  RegionDescriptor descriptor;
};

Result<Target> SpawnTarget(const BenchArgs& args) {
  WS_ASSIGN_OR_RETURN(auto pair, MakeChannelPair());
  Target target;
  const int child_fd = pair.second.fd();
  target.pid = fork();
  if (target.pid < 0) return Unavailable("fork failed");
  if (target.pid == 0) {
    fcntl(child_fd, F_SETFD, 0);
    std::vector<std::string> argv = {"weightsync", "bench", "transport", "--serve-fd",
                                     std::to_string(child_fd), "--backend", args.backend,
                                     "--size", args.size_text, "--count",
                                     std::to_string(args.count), "--memory", args.memory,
                                     "--device",
                                     std::to_string(args.device), "--peer-device",
                                     std::to_string(args.peer_device)};
    if (!args.cuda_small_write_bytes.empty()) {
      argv.insert(argv.end(), {"--cuda-small-write-bytes", args.cuda_small_write_bytes});
    }
    if (!args.ucx_tls.empty()) argv.insert(argv.end(), {"--ucx-tls", args.ucx_tls});
    if (!args.pin.empty()) argv.insert(argv.end(), {"--pin", args.pin});
    if (!args.ucx_net_devices.empty()) {
      argv.insert(argv.end(), {"--ucx-net-devices", args.ucx_net_devices});
    }
    std::vector<char*> c_argv;
    for (auto& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    execv("/proc/self/exe", c_argv.data());
    _exit(127);
  }
  target.channel = std::move(pair.first);
  WS_ASSIGN_OR_RETURN(auto address, target.channel.Receive(DeadlineIn(60)));
  WS_ASSIGN_OR_RETURN(target.address, PeerAddress::Deserialize(address));
  WS_ASSIGN_OR_RETURN(auto descriptor, target.channel.Receive(DeadlineIn(60)));
  WS_ASSIGN_OR_RETURN(target.descriptor, RegionDescriptor::Deserialize(descriptor));
  return target;
}

struct BenchResult {
  double seconds = 0;
  double gbps = 0;
  double writes_per_s = 0;
  std::string detail;
};

Result<BenchResult> RunWriter(const BenchArgs& args, uint64_t size) {
  const uint64_t total = size * args.count;
  WS_RETURN_IF_ERROR(PinTo(args.pin, 0));  // the target re-pins itself to its own CPU
  WS_ASSIGN_OR_RETURN(auto writer, MakeTransport(args, 0));
  WS_ASSIGN_OR_RETURN(BenchBuffer src, MakeBuffer(*writer, args, total, args.device, "bench.src"));
  // The local backend's target lives in this process.
  std::unique_ptr<Transport> local_target;
  BenchBuffer local_dst;
  Target target;
  if (args.backend == "local") {
    WS_ASSIGN_OR_RETURN(local_target, MakeTransport(args, 1));
    WS_ASSIGN_OR_RETURN(local_dst, MakeBuffer(*local_target, args, total, 0, "bench.dst"));
    WS_ASSIGN_OR_RETURN(target.address, local_target->LocalAddress());
    WS_ASSIGN_OR_RETURN(target.descriptor, local_target->Export(local_dst.region));
  } else {
    WS_ASSIGN_OR_RETURN(target, SpawnTarget(args));
  }
  auto finish = [&](Status s) -> Status {
    if (target.pid > 0) {
      (void)target.channel.SendText("EXIT");
      int wstatus = 0;
      waitpid(target.pid, &wstatus, 0);
      if (s.ok() && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)) {
        s = Internal("bench target process failed (status ", wstatus, ")");
      }
    }
    return s;
  };
  auto peer = writer->Connect(target.address, DeadlineIn(30));
  if (!peer.ok()) return finish(peer.status());
  auto remote = writer->Import(*peer, target.descriptor, total);
  if (!remote.ok()) return finish(remote.status());
  std::vector<Write> batch;
  for (uint64_t i = 0; i < args.count; ++i) {
    batch.push_back({src.region, i * size, *remote, i * size, size});
  }
  auto round = [&](int n) -> Status {
    const Deadline deadline = DeadlineIn(600);
    for (int i = 0; i < n; ++i) WS_RETURN_IF_ERROR(writer->PostWrites(*peer, batch, deadline));
    return writer->Flush(*peer, deadline);
  };
  if (Status s = round(args.warmup); !s.ok()) return finish(s);
  const auto start = Clock::now();
  if (Status s = round(args.iters); !s.ok()) return finish(s);
  BenchResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.gbps = static_cast<double>(total) * args.iters / result.seconds / 1e9;
  result.writes_per_s = static_cast<double>(args.count) * args.iters / result.seconds;
  result.detail = writer->capabilities().detail;
  WS_RETURN_IF_ERROR(finish(Status::Ok()));
  return result;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = bench->add_subcommand(
      "transport", "Write throughput between two processes on this host (GB/s = 1e9 bytes/s)");
  cmd->add_option("--backend", args->backend, "local, ucx or cuda_ipc")->capture_default_str();
  cmd->add_option("--size", args->size_text, "Bytes per write (64MiB, 1GiB, ...)")
      ->capture_default_str();
  cmd->add_option("--iters", args->iters, "Timed writes")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed writes first")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object; `gbps` is bytes/s / 1e9");
  cmd->add_option("--memory", args->memory,
                  "host or cuda: what both buffers are (default: cuda for cuda_ipc, else host)")
      ->check(CLI::IsMember({"host", "cuda"}));
  cmd->add_option("--ucx-tls", args->ucx_tls,
                  "Overrides transport.ucx_tls (e.g. tcp, sm, sm,cuda_copy,cuda_ipc)");
  cmd->add_option("--ucx-net-devices", args->ucx_net_devices,
                  "Overrides transport.ucx_net_devices (e.g. lo)");
  cmd->add_option("--count", args->count, "Writes of --size per batch, at consecutive offsets")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--device", args->device, "--memory cuda: the writer's GPU")
      ->capture_default_str();
  cmd->add_option("--peer-device", args->peer_device,
                  "--memory cuda: the target's GPU (default: 1 when there are two GPUs, else 0)");
  cmd->add_option("--cuda-small-write-bytes", args->cuda_small_write_bytes,
                  "Overrides transport.cuda_small_write_bytes (0: no batched kernel)");
  cmd->add_option("--pin", args->pin,
                  "WRITER_CPU,TARGET_CPU: pin the two processes (bench/transport.sh --pin)");
  cmd->add_option("--serve-fd", args->serve_fd, "(internal) run as the target on this socket")
      ->group("");
  cmd->callback([args, &exit_code] {
    auto size = ParseBytes(args->size_text);
    if (!size.ok() || *size == 0) {
      std::cerr << "weightsync bench transport: bad --size " << args->size_text << "\n";
      exit_code = 2;
      return;
    }
    if (args->serve_fd >= 0) {
      const Status s = Serve(*args, *size);
      if (!s.ok()) std::cerr << "weightsync bench target: " << s.ToString() << "\n";
      exit_code = s.ok() ? 0 : 1;
      return;
    }
    if (args->memory.empty()) args->memory = args->backend == "cuda_ipc" ? "cuda" : "host";
    if (args->backend == "cuda_ipc" && args->memory != "cuda") {
      std::cerr << "weightsync bench transport: cuda_ipc writes GPU memory only (--memory cuda)\n";
      exit_code = 2;
      return;
    }
    if (OnGpu(*args) && args->peer_device < 0) {
      args->peer_device = CudaDeviceCount() > 1 ? 1 : 0;
    }
    auto result = RunWriter(*args, *size);
    if (!result.ok()) {
      std::cerr << "weightsync bench transport: " << result.status().ToString() << "\n";
      exit_code = 1;
      return;
    }
    nlohmann::json out = {{"backend", args->backend}, {"memory", args->memory}, {"size", *size},
                          {"count", args->count},     {"iters", args->iters},
                          {"seconds", result->seconds}, {"gbps", result->gbps},
                          {"writes_per_s", result->writes_per_s}, {"detail", result->detail}};
    std::string comparison;
    if (OnGpu(*args)) {
      out["device"] = args->device;
      out["peer_device"] = args->peer_device;
      // The baseline is measured in this run, after the transport run, on the same GPUs.
      auto baseline = MeasureDeviceCopyGbps(args->device, args->peer_device, *size * args->count,
                                            std::max(args->iters, 1));
      if (!baseline.ok()) {
        std::cerr << "weightsync bench transport: " << baseline.status().ToString() << "\n";
        exit_code = 1;
        return;
      }
      out["copy_gbps"] = *baseline;
      out["ratio"] = result->gbps / *baseline;
      comparison = StrCat("in-process device-to-device copy GPU ", args->device, " -> GPU ",
                          args->peer_device, " of ", args->count == 1 ? "the same size" :
                          "the batch's bytes as one copy", ": ", *baseline, " GB/s; ratio ",
                          result->gbps / *baseline,
                          args->count == 1 && args->backend == "cuda_ipc" ? " (target >= 0.95)"
                                                                          : "");
      if (args->count > 1 && args->backend == "cuda_ipc") {
        // The same batches with every write on a copy engine, in this run: what the kernel buys.
        BenchArgs per_write = *args;
        per_write.cuda_small_write_bytes = "0";
        auto copies = RunWriter(per_write, *size);
        if (!copies.ok()) {
          std::cerr << "weightsync bench transport: " << copies.status().ToString() << "\n";
          exit_code = 1;
          return;
        }
        out["per_write_copies_gbps"] = copies->gbps;
        out["per_write_copies_writes_per_s"] = copies->writes_per_s;
        out["speedup"] = result->writes_per_s / copies->writes_per_s;
        comparison += StrCat("\nsame batches, every write on a copy engine: ", copies->gbps,
                             " GB/s, ", copies->writes_per_s, " writes/s; configured / per-write ",
                             result->writes_per_s / copies->writes_per_s);
      }
    }
    if (args->json) {
      std::cout << out.dump() << "\n";
    } else {
      std::cout << args->backend << ": " << args->iters << " x " << args->count << " x "
                << args->size_text << " in " << result->seconds << " s = " << result->gbps
                << " GB/s, " << result->writes_per_s << " writes/s (" << result->detail << ")\n";
      if (!comparison.empty()) std::cout << comparison << "\n";
    }
  });
}

}  // namespace weightsync::cli
