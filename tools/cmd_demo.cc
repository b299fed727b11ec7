// `weightsync demo`: the whole product on one machine. Starts the embedded store on loopback,
// spawns N trainer and M x R inference processes (`weightsync demo-worker`), runs K pushes of
// changing weights, and prints one row per push: bytes, seconds, GB/s, the slowest trainer's time
// in each phase, and whether every inference rank verified every byte against the reference
// conversion. Exit code 0 only when every push committed and verified everywhere.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/job_plan.h"
#include "commands.h"
#include "control/deadline.h"
#include "control/store_server.h"
#include "convert/cuda/device_ops.h"
#include "demo_flags.h"

namespace weightsync::cli {
namespace {

using nlohmann::json;

struct Worker {
  std::string role;
  int rank = 0;
  pid_t pid = -1;
  int out = -1;          // read end of its stdout
  std::string pending;   // a partial line
  int exit_code = -1;
  bool restarted = false;
};

std::string RandomToken() {
  std::random_device random;
  char buffer[33];
  std::snprintf(buffer, sizeof buffer, "%08x%08x%08x%08x", random(), random(), random(), random());
  return buffer;
}

Result<Worker> Spawn(const std::string& role, int rank, const std::vector<std::string>& args,
                     const std::string& token) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Internal("pipe: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) return Internal("fork: ", std::strerror(errno));
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::setenv("WEIGHTSYNC_STORE_TOKEN", token.c_str(), 1);
    std::vector<std::string> argv = {"weightsync", "demo-worker", "--role", role, "--rank",
                                     std::to_string(rank)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv("/proc/self/exe", raw.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  return Worker{role, rank, pid, pipe_fds[0], "", -1, false};
}

struct PushRow {
  int64_t bytes = 0;
  double seconds = 0;
  std::map<std::string, double> phase_s;  // slowest trainer's time in each phase
  int verified = 0;
  int unchecked = 0;  // inference ranks that did not verify this push (--verify last)
  int reports = 0;
  int failed_trainers = 0;
  int torn_inference = 0;  // inference ranks that reported the push failed and themselves torn
  std::vector<std::string> errors;          // verification mismatches and unexpected failures
  std::vector<std::string> trainer_errors;  // why the push failed, as each trainer saw it
};

std::string Fixed(double v, int digits = 3) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
  return buffer;
}

constexpr const char* kPhases[] = {"pause", "scan", "gather", "gather-barrier", "convert+write",
                                   "transfer-barrier", "commit"};

void PrintHeader() {
  std::cout << "| push | bytes | seconds | GB/s |";
  for (const char* p : kPhases) std::cout << " " << p << " |";
  std::cout << " verified |\n|---|---|---|---|";
  for (size_t i = 0; i < std::size(kPhases); ++i) std::cout << "---|";
  std::cout << "---|\n";
}

double Gbps(const PushRow& row) {
  return row.seconds > 0 ? static_cast<double>(row.bytes) / row.seconds / 1e9 : 0;
}

std::string Outcome(const PushRow& row, int inference_ranks) {
  if (row.failed_trainers > 0) {
    return StrCat("failed (", row.failed_trainers, " trainers; ", row.torn_inference,
                  " inference ranks torn)");
  }
  if (row.unchecked == inference_ranks) return "not checked";
  return StrCat(row.verified, "/", inference_ranks);
}

void PrintRow(int step, const PushRow& row, int inference_ranks) {
  std::cout << "| " << step << " | " << row.bytes << " | " << Fixed(row.seconds) << " | "
            << Fixed(Gbps(row), 2) << " |";
  for (const char* p : kPhases) {
    auto it = row.phase_s.find(p);
    std::cout << " " << Fixed(it == row.phase_s.end() ? 0 : it->second) << " |";
  }
  std::cout << " " << Outcome(row, inference_ranks) << " |" << std::endl;
}

int RunDemo(const DemoFlags& flags, bool as_json, const std::string& trace_path) {
  const auto fail = [](const Status& s) {
    std::cerr << "weightsync demo: " << s.ToString() << "\n";
    return 1;
  };
  const std::string token = RandomToken();
  // The job's plan, here first: bad flags fail before any process starts.
  Result<agent::AgentOptions> options = DemoAgentOptions(flags, "demo", "", token);
  if (!options.ok()) return fail(options.status());
  Result<agent::JobPlan> job = agent::BuildJobPlan(*options);
  if (!job.ok()) return fail(job.status());
  if (flags.device == "cuda") {
    if (Result<int> gpus = CudaDeviceCount(); !gpus.ok() || *gpus < 1) {
      return fail(Unavailable("--device cuda: no usable CUDA device here (",
                              gpus.ok() ? "none visible" : gpus.status().message(), ")"));
    }
  }
  Result<Config> config = Config::FromEnvironment();
  if (!config.ok()) return fail(config.status());
  Result<control::StoreServerOptions> store_options =
      control::StoreServerOptions::FromConfig(*config);
  if (!store_options.ok()) return fail(store_options.status());
  store_options->token = token;  // host stays loopback
  Result<std::unique_ptr<control::StoreServer>> store =
      control::StoreServer::Start(*store_options);
  if (!store.ok()) return fail(store.status());

  const int trainers = job->trainer_world();
  const int inference = job->inference_world();
  if (!as_json) {
    std::cout << "weightsync demo: " << job->spec.name << " (" << flags.preset << "), "
              << trainers << " trainer -> " << inference << " inference processes ("
              << job->plan.options.inference.ToString() << "), transport " << options->transport
              << ", plan " << job->plan.hash << ", " << flags.pushes << " pushes\n\n";
    PrintHeader();
  }
  std::vector<std::string> args = DemoFlagArgs(flags);
  args.insert(args.end(), {"--store", (*store)->address(), "--job", "demo"});
  std::vector<Worker> workers;
  for (int r = 0; r < trainers + inference; ++r) {
    const bool trainer = r < trainers;
    Result<Worker> w = Spawn(trainer ? "trainer" : "inference", trainer ? r : r - trainers, args,
                             token);
    if (!w.ok()) return fail(w.status());
    workers.push_back(*w);
  }

  const bool killing = flags.kill_inference >= 0;
  if (killing && (flags.kill_inference >= inference || flags.kill_at_step < 1 ||
                  flags.kill_at_step >= flags.pushes)) {
    return fail(InvalidArgument("--kill-inference must name an inference rank below ", inference,
                                " and --kill-at-step a push before the last (", flags.pushes,
                                ")"));
  }
  std::map<int, PushRow> rows;
  json speed_of_light;  // GPU runs: trainer 0's peer-copy measurement
  json trace_events = json::array();
  const control::Deadline deadline =
      control::DeadlineIn(flags.timeout_s * (3.0 * flags.pushes + 2));
  int open = static_cast<int>(workers.size());
  const bool progress = !as_json && ::isatty(STDERR_FILENO);
  const auto started = control::Clock::now();
  int next_row = 1;
  while (open > 0 && control::Clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (const Worker& w : workers) fds.push_back({w.out, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < workers.size(); ++i) {
      Worker& w = workers[i];
      if (w.out < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[65536];
      const ssize_t n = ::read(w.out, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(w.out);
        w.out = -1;
        --open;
        if (killing && w.role == "inference" && w.rank == flags.kill_inference && !w.restarted) {
          // The fault drill's victim: once it is dead, start it again; it rejoins the job.
          int status = 0;
          ::waitpid(w.pid, &status, 0);
          if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            std::cerr << "weightsync demo: inference " << w.rank << " was to be killed at push "
                      << flags.kill_at_step << " but exited otherwise\n";
            w.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            continue;
          }
          if (!as_json) std::cout << "(inference " << w.rank << " killed; restarting it)\n";
          std::vector<std::string> restart_args = args;
          restart_args.push_back("--restarted");
          Result<Worker> again = Spawn("inference", w.rank, restart_args, token);
          if (!again.ok()) return fail(again.status());
          again->restarted = true;
          w = *again;
          ++open;
        }
        continue;
      }
      w.pending.append(buffer, n);
      for (size_t eol; (eol = w.pending.find('\n')) != std::string::npos;) {
        const std::string line = w.pending.substr(0, eol);
        w.pending.erase(0, eol + 1);
        json report = json::parse(line, nullptr, false);
        if (report.is_discarded()) continue;
        if (report.contains("speed_of_light_seconds") || report.contains("speed_of_light_skipped")) {
          speed_of_light = report;
          continue;
        }
        if (!report.contains("step")) continue;
        PushRow& row = rows[report["step"].get<int>()];
        row.reports += 1;
        const bool is_trainer = w.role == "trainer";
        if (report.value("failed", false)) {
          if (is_trainer) {
            row.failed_trainers += 1;
            row.trainer_errors.push_back(report["error"].get<std::string>());
          } else if (report.value("state", "") == "torn") {
            row.torn_inference += 1;
          } else {
            row.errors.push_back(StrCat("inference ", w.rank, " failed without being torn: ",
                                        report["error"].get<std::string>()));
          }
        } else if (is_trainer) {
          row.seconds = std::max(row.seconds, report["seconds"].get<double>());
        } else {
          row.bytes += report["bytes"].get<int64_t>();
          if (!report.value("checked", true)) {
            row.unchecked += 1;
          } else if (report["verified"].get<bool>()) {
            row.verified += 1;
          } else {
            row.errors.push_back(report["error"].get<std::string>());
          }
        }
        for (const json& span : report["spans"]) {
          if (is_trainer) {
            double& slowest = row.phase_s[span["name"].get<std::string>()];
            slowest = std::max(slowest, static_cast<double>(span["dur"].get<int64_t>()) / 1e6);
          }
          trace_events.push_back({{"name", span["name"]}, {"ph", "X"}, {"ts", span["ts"]},
                                  {"dur", span["dur"]}, {"pid", is_trainer ? 1 : 2},
                                  {"tid", w.rank}, {"args", {{"step", report["step"]}}}});
        }
      }
    }
    if (progress) {
      // A bar on the terminal between rows: pushes reported so far, and how long this run took.
      const int done = next_row - 1;
      const int width = 24;
      const int filled = flags.pushes > 0 ? done * width / flags.pushes : width;
      std::fprintf(stderr, "\r[%s%s] push %d/%d, %.1f s", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), std::min(done + 1, flags.pushes),
                   flags.pushes,
                   std::chrono::duration<double>(control::Clock::now() - started).count());
    }
    // Rows print in order, once every rank has reported (the killed rank never reports its push).
    const auto expected_reports = [&](int step) {
      return trainers + inference - (killing && step == flags.kill_at_step ? 1 : 0);
    };
    while (rows.count(next_row) && rows[next_row].reports == expected_reports(next_row)) {
      const PushRow& row = rows[next_row];
      if (progress) std::fprintf(stderr, "\r\033[K");  // the row replaces the bar
      if (as_json) {
        std::cout << json{{"step", next_row}, {"bytes", row.bytes}, {"seconds", row.seconds},
                          {"gbps", Gbps(row)},
                          {"phases", row.phase_s}, {"verified", row.verified == inference},
                          {"committed", row.failed_trainers == 0},
                          {"failure", row.trainer_errors.empty() ? "" : row.trainer_errors[0]}}
                         .dump()
                  << std::endl;
      } else {
        PrintRow(next_row, row, inference);
      }
      ++next_row;
    }
  }
  if (progress) std::fprintf(stderr, "\r\033[K");
  bool ok = open == 0;
  if (!ok) std::cerr << "weightsync demo: workers still running at the deadline; stopping them\n";
  for (Worker& w : workers) {
    if (!ok) ::kill(w.pid, SIGKILL);
    int status = 0;
    if (w.exit_code < 0) {
      ::waitpid(w.pid, &status, 0);
      w.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (w.exit_code != 0) {
      std::cerr << "weightsync demo: " << w.role << " " << w.rank << " exited with "
                << w.exit_code << "\n";
      ok = false;
    }
  }
  for (const auto& [step, row] : rows) {
    for (const std::string& e : row.errors) std::cerr << "push " << step << ": " << e << "\n";
    ok = ok && row.errors.empty();
    const bool drill = killing && step == flags.kill_at_step;
    if (drill) {
      // Every trainer must have failed naming the killed rank; every survivor must be torn.
      const std::string victim = StrCat("inference ", flags.kill_inference);
      for (const std::string& e : row.trainer_errors) {
        if (e.find(victim) == std::string::npos) {
          std::cerr << "push " << step << ": a trainer's error does not name " << victim << ": "
                    << e << "\n";
          ok = false;
        }
      }
      if (row.failed_trainers != trainers || row.torn_inference != inference - 1) {
        std::cerr << "push " << step << ": expected every trainer to fail and " << inference - 1
                  << " inference ranks torn, got " << row.failed_trainers << " and "
                  << row.torn_inference << "\n";
        ok = false;
      }
    } else if (row.failed_trainers > 0 || row.verified + row.unchecked != inference ||
               (step == flags.pushes && row.verified != inference)) {
      for (const std::string& e : row.trainer_errors) {
        std::cerr << "push " << step << ": " << e << "\n";
      }
      ok = false;
    }
  }
  ok = ok && next_row == flags.pushes + 1;
  if (!trace_path.empty()) {
    trace_events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                            {"args", {{"name", "trainers"}}}});
    trace_events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 2},
                            {"args", {{"name", "inference"}}}});
    std::ofstream(trace_path) << json{{"traceEvents", trace_events}}.dump() << "\n";
  }
  if (speed_of_light.contains("speed_of_light_skipped")) {
    const std::string why = speed_of_light["speed_of_light_skipped"].get<std::string>();
    std::cout << (as_json ? json{{"speed_of_light_skipped", why}}.dump()
                          : StrCat("\nspeed of light: not measured (", why, ")"))
              << std::endl;
  } else if (!speed_of_light.is_null()) {
    const double sol = speed_of_light["speed_of_light_seconds"].get<double>();
    double best = 0;
    for (const auto& [step, row] : rows) {
      if (row.failed_trainers == 0 && row.seconds > 0 && (best == 0 || row.seconds < best)) {
        best = row.seconds;
      }
    }
    if (as_json) {
      std::cout << json{{"speed_of_light_seconds", sol}, {"best_push_seconds", best},
                        {"push_over_speed_of_light", sol > 0 ? best / sol : 0}}
                       .dump()
                << std::endl;
    } else {
      std::cout << "\nspeed of light (peer copies of every inference GPU's bytes, all at once): "
                << Fixed(sol, 4) << " s; best push " << Fixed(best, 4) << " s = "
                << Fixed(sol > 0 ? best / sol : 0, 2) << "x\n";
    }
  }
  if (!as_json) {
    std::cout << "\n"
              << (!ok       ? "FAILED"
                  : killing ? StrCat("push ", flags.kill_at_step, " failed naming inference ",
                                     flags.kill_inference, " as the drill expects; every other "
                                     "push committed and verified")
                  : flags.verify == "last"
                            ? std::string("all pushes committed; the last one verified")
                            : std::string("all pushes committed and verified"))
              << "\n";
  }
  return ok ? 0 : 1;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int& exit_code) {
  struct Flags {
    DemoFlags demo;
    bool json = false;
    std::string trace;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Push changing weights from trainer processes into inference processes on this "
              "machine and verify every byte");
  AddDemoFlags(*cmd, flags->demo);
  cmd->add_flag("--json", flags->json, "One JSON object per push");
  cmd->add_option("--trace", flags->trace, "Write a Chrome/Perfetto trace of every rank's phases");
  cmd->callback([flags, &exit_code] {
    // A usage error (CLI11's path, as for any bad flag) before anything starts.
    if (Status s = ResolveModelAndPreset(flags->demo); !s.ok()) {
      throw CLI::ValidationError("--model/--preset", s.message());
    }
    exit_code = RunDemo(flags->demo, flags->json, flags->trace);
  });
}

}  // namespace weightsync::cli
