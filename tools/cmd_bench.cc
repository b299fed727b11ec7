// `weightsync bench transport`: write throughput between two processes on this host.
//
// The writer fork/execs itself as the target (`--serve-fd`, hidden), receives the target's address
// and descriptor over a socketpair, then times `iters` writes of `size` bytes followed by one
// flush, like `ucx_perftest -t ucp_put_bw` (bench/transport.sh runs both and prints the ratio).
// The local backend cannot cross processes and runs writer and target in one process.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "core/config.h"
#include "core/log.h"
#include "transport/socket_channel.h"
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
  std::string ucx_tls;
  std::string ucx_net_devices;
  int serve_fd = -1;
};

Result<std::unique_ptr<Transport>> MakeTransport(const BenchArgs& args, int32_t rank) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(TransportOptions options, OptionsFromConfig(config, rank));
  if (!args.ucx_tls.empty()) options.ucx_tls = args.ucx_tls;
  if (!args.ucx_net_devices.empty()) options.ucx_net_devices = args.ucx_net_devices;
  return CreateTransport(args.backend, options);
}

// The target: registers a buffer, publishes it, progresses until told to exit.
Status Serve(const BenchArgs& args, uint64_t size) {
  SocketChannel channel(args.serve_fd);
  WS_ASSIGN_OR_RETURN(auto t, MakeTransport(args, 1));
  std::vector<uint8_t> dst(size);
  WS_ASSIGN_OR_RETURN(RegionId region, t->Register(dst.data(), size, MemoryKind::kHost, "bench.dst"));
  WS_ASSIGN_OR_RETURN(PeerAddress address, t->LocalAddress());
  WS_ASSIGN_OR_RETURN(RegionDescriptor descriptor, t->Export(region));
  WS_RETURN_IF_ERROR(channel.Send(address.Serialize()));
  WS_RETURN_IF_ERROR(channel.Send(descriptor.Serialize()));
  for (uint64_t spin = 1;; ++spin) {
    t->Progress();
    if (spin % 64 == 0 && channel.Readable()) break;  // any message (or EOF) ends the run
  }
  return t->Deregister(region);
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
                                     "--size", args.size_text};
    if (!args.ucx_tls.empty()) argv.insert(argv.end(), {"--ucx-tls", args.ucx_tls});
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
  std::string detail;
};

Result<BenchResult> RunWriter(const BenchArgs& args, uint64_t size) {
  WS_ASSIGN_OR_RETURN(auto writer, MakeTransport(args, 0));
  std::vector<uint8_t> src(size, 0x5A);
  WS_ASSIGN_OR_RETURN(RegionId src_region,
                      writer->Register(src.data(), size, MemoryKind::kHost, "bench.src"));
  // The local backend's target lives in this process, progressed by a thread.
  std::unique_ptr<Transport> local_target;
  std::vector<uint8_t> local_dst;
  Target target;
  if (args.backend == "local") {
    WS_ASSIGN_OR_RETURN(local_target, MakeTransport(args, 1));
    local_dst.resize(size);
    WS_ASSIGN_OR_RETURN(RegionId r, local_target->Register(local_dst.data(), size,
                                                           MemoryKind::kHost, "bench.dst"));
    WS_ASSIGN_OR_RETURN(target.address, local_target->LocalAddress());
    WS_ASSIGN_OR_RETURN(target.descriptor, local_target->Export(r));
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
  auto remote = writer->Import(*peer, target.descriptor, size);
  if (!remote.ok()) return finish(remote.status());
  const Write write{src_region, 0, *remote, 0, size};
  auto round = [&](int n) -> Status {
    const Deadline deadline = DeadlineIn(600);
    for (int i = 0; i < n; ++i) WS_RETURN_IF_ERROR(writer->PostWrites(*peer, {&write, 1}, deadline));
    return writer->Flush(*peer, deadline);
  };
  if (Status s = round(args.warmup); !s.ok()) return finish(s);
  const auto start = Clock::now();
  if (Status s = round(args.iters); !s.ok()) return finish(s);
  BenchResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.gbps = static_cast<double>(size) * args.iters / result.seconds / 1e9;
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
  cmd->add_option("--ucx-tls", args->ucx_tls, "Overrides transport.ucx_tls (e.g. tcp, sm)");
  cmd->add_option("--ucx-net-devices", args->ucx_net_devices,
                  "Overrides transport.ucx_net_devices (e.g. lo)");
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
    if (args->backend == "cuda_ipc") {
      std::cerr << "weightsync bench transport: cuda_ipc between GPUs runs on GPU hosts: "
                << "bench/gpu/transport_gpu.sh\n";
    }
    auto result = RunWriter(*args, *size);
    if (!result.ok()) {
      std::cerr << "weightsync bench transport: " << result.status().ToString() << "\n";
      exit_code = 1;
      return;
    }
    if (args->json) {
      nlohmann::json out = {{"backend", args->backend}, {"size", *size},
                            {"iters", args->iters},     {"seconds", result->seconds},
                            {"gbps", result->gbps},     {"detail", result->detail}};
      std::cout << out.dump() << "\n";
    } else {
      std::cout << args->backend << ": " << args->iters << " x " << args->size_text << " in "
                << result->seconds << " s = " << result->gbps << " GB/s (" << result->detail
                << ")\n";
    }
  });
}

}  // namespace weightsync::cli
