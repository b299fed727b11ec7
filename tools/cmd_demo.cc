// `weightsync demo`: the whole product on one machine. Starts the embedded store on loopback,
// spawns N trainer and M x R inference processes (`weightsync demo-worker`), runs K pushes of
// changing weights, and prints one row per push: bytes, seconds, GB/s, the slowest trainer's time
// in each phase, and whether every inference rank verified every byte against the reference
// conversion. Exit code 0 only when every push committed and verified everywhere.
//
// A worker that dies or stalls (SIGSTOP, a hang) ends the run within one push deadline: the
// driver stops a worker that printed nothing for a push's deadline while the others moved past
// it, and every push's row still prints, naming the workers that never reported it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/job_plan.h"
#include "commands.h"
#include "control/deadline.h"
#include "control/store_server.h"
#include "convert/cuda/device_ops.h"
#include "demo_flags.h"
#include "demo_report.h"

namespace weightsync::cli {
namespace {

using control::Clock;
using nlohmann::json;

struct Worker {
  std::string role;
  int rank = 0;
  pid_t pid = -1;
  int out = -1;         // read end of its stdout; -1 once it closed
  std::string pending;  // a partial line
  int exit_code = -1;
  bool restarted = false;
  bool stalled = false;           // stopped by the driver for printing nothing
  int last_step = 0;              // the last push it reported
  Clock::time_point last_output;  // when it last printed (or started)

  std::string name() const { return StrCat(role, " ", rank); }
  bool is_trainer() const { return role == "trainer"; }
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
    std::vector<std::string> argv = {"weightsync", "demo-worker", "--role",
                                     role,         "--rank",      std::to_string(rank)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv("/proc/self/exe", raw.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  Worker worker;
  worker.role = role;
  worker.rank = rank;
  worker.pid = pid;
  worker.out = pipe_fds[0];
  worker.last_output = Clock::now();
  return worker;
}

int ExitCodeOf(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs the workers of one demo and collects their reports into `report`.
class DemoDriver {
 public:
  DemoDriver(const DemoFlags& flags, std::vector<std::string> args, std::string token,
             DemoReport& report)
      : flags_(flags),
        args_(std::move(args)),
        token_(std::move(token)),
        report_(report),
        // One push's deadline: its pause, transfer and commit phases.
        stall_after_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(3 * flags.timeout_s))) {}

  Status Start(int trainers, int inference);
  // Until every worker has exited (or was stopped); false when the overall deadline passed.
  bool Run();
  // Reaps every worker; false when any exited non-zero or was stopped.
  bool Reap();

 private:
  bool killing() const { return flags_.kill_inference >= 0; }
  Status ReadFrom(Worker& w);
  Status OnClosed(Worker& w);
  void StopStalled();
  bool Accounted(int step, PushRow& row) const;
  void DrawProgress() const;

  const DemoFlags& flags_;
  std::vector<std::string> args_;
  std::string token_;
  DemoReport& report_;
  Clock::duration stall_after_;
  std::vector<Worker> workers_;
  int open_ = 0;
  Clock::time_point started_ = Clock::now();
};

Status DemoDriver::Start(int trainers, int inference) {
  for (int r = 0; r < trainers + inference; ++r) {
    const bool trainer = r < trainers;
    WS_ASSIGN_OR_RETURN(Worker w, Spawn(trainer ? "trainer" : "inference",
                                        trainer ? r : r - trainers, args_, token_));
    workers_.push_back(std::move(w));
  }
  open_ = static_cast<int>(workers_.size());
  return Status::Ok();
}

// Reads what `w` printed and adds its complete lines to the report.
Status DemoDriver::ReadFrom(Worker& w) {
  char buffer[65536];
  const ssize_t n = ::read(w.out, buffer, sizeof buffer);
  if (n <= 0) return OnClosed(w);
  w.last_output = Clock::now();
  w.pending.append(buffer, n);
  for (size_t eol; (eol = w.pending.find('\n')) != std::string::npos;) {
    json line = json::parse(w.pending.substr(0, eol), nullptr, false);
    w.pending.erase(0, eol + 1);
    if (line.is_discarded()) continue;
    if (line.contains("step")) w.last_step = std::max(w.last_step, line["step"].get<int>());
    report_.Add(w.name(), w.is_trainer(), w.rank, line);
  }
  return Status::Ok();
}

// The worker's stdout closed: it exited. The fault drill's victim is started again.
Status DemoDriver::OnClosed(Worker& w) {
  ::close(w.out);
  w.out = -1;
  --open_;
  if (!killing() || w.is_trainer() || w.rank != flags_.kill_inference || w.restarted) {
    return Status::Ok();
  }
  int status = 0;
  ::waitpid(w.pid, &status, 0);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    std::cerr << "weightsync demo: inference " << w.rank << " was to be killed at push "
              << flags_.kill_at_step << " but exited otherwise\n";
    w.exit_code = ExitCodeOf(status);
    return Status::Ok();
  }
  if (!report_.as_json()) std::cout << "(inference " << w.rank << " killed; restarting it)\n";
  std::vector<std::string> restart_args = args_;
  restart_args.push_back("--restarted");
  WS_ASSIGN_OR_RETURN(Worker again, Spawn("inference", w.rank, restart_args, token_));
  again.restarted = true;
  w = std::move(again);
  ++open_;
  return Status::Ok();
}

// A worker that printed nothing for a push's deadline while another reported a later push (or
// every other worker finished) will not report again: stop it so the run ends.
void DemoDriver::StopStalled() {
  const auto now = Clock::now();
  for (Worker& w : workers_) {
    if (w.out < 0 || now - w.last_output < stall_after_) continue;
    bool others_moved_on = true;
    bool behind = false;
    for (const Worker& other : workers_) {
      if (&other == &w) continue;
      others_moved_on = others_moved_on && other.out < 0;
      behind = behind || other.last_step > w.last_step;
    }
    if (!behind && !others_moved_on) continue;
    std::cerr << "weightsync demo: " << w.name() << " (pid " << w.pid << ") printed nothing for "
              << static_cast<int>(std::chrono::duration<double>(now - w.last_output).count())
              << " s after its push " << w.last_step << " while the others went on; stopping it\n";
    ::kill(w.pid, SIGKILL);
    w.stalled = true;
  }
}

// Push `step` is accounted for when every worker reported it or can no longer (then named in
// row.missing); the drill's victim never reports the push it was killed in.
bool DemoDriver::Accounted(int step, PushRow& row) const {
  std::vector<std::string> missing;
  for (const Worker& w : workers_) {
    if (row.reporters.contains(w.name())) continue;
    if (killing() && !w.is_trainer() && w.rank == flags_.kill_inference &&
        step == flags_.kill_at_step) {
      continue;
    }
    if (w.out >= 0) return false;  // may still report it
    missing.push_back(w.name());
  }
  row.missing = std::move(missing);
  return true;
}

void DemoDriver::DrawProgress() const {
  // A bar on the terminal between rows: pushes reported so far, and how long this run took.
  const int done = report_.rows_printed();
  const int width = 24;
  const int filled = flags_.pushes > 0 ? done * width / flags_.pushes : width;
  std::fprintf(stderr, "\r[%s%s] push %d/%d, %.1f s", std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), std::min(done + 1, flags_.pushes),
               flags_.pushes, std::chrono::duration<double>(Clock::now() - started_).count());
}

bool DemoDriver::Run() {
  // The last resort behind the stall rule: every push's every phase at its deadline, and joining.
  const control::Deadline deadline =
      control::DeadlineIn(flags_.timeout_s * (3.0 * flags_.pushes + 2));
  while (open_ > 0 && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (const Worker& w : workers_) fds.push_back({w.out, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].out < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (Status s = ReadFrom(workers_[i]); !s.ok()) {
        std::cerr << "weightsync demo: " << s.ToString() << "\n";
        return false;
      }
    }
    StopStalled();
    if (report_.progress_bar()) DrawProgress();
    report_.PrintReadyRows([&](int step, PushRow& row) { return Accounted(step, row); });
  }
  report_.PrintReadyRows([&](int step, PushRow& row) { return Accounted(step, row); });
  return open_ == 0;
}

bool DemoDriver::Reap() {
  bool ok = open_ == 0;
  if (!ok) std::cerr << "weightsync demo: workers still running at the deadline; stopping them\n";
  for (Worker& w : workers_) {
    if (!ok) ::kill(w.pid, SIGKILL);
    if (w.exit_code < 0) {
      int status = 0;
      ::waitpid(w.pid, &status, 0);
      w.exit_code = ExitCodeOf(status);
    }
    if (w.stalled) {
      std::cerr << "weightsync demo: " << w.name() << " was stopped: it stalled\n";
      ok = false;
    } else if (w.exit_code != 0) {
      std::cerr << "weightsync demo: " << w.name() << " exited with " << w.exit_code << "\n";
      ok = false;
    }
  }
  return ok;
}

// Checks the flags against the job and prepares the store; bad flags fail before any process.
Status CheckDemoFlags(const DemoFlags& flags, const agent::JobPlan& job) {
  if (flags.device == "cuda") {
    if (Result<int> gpus = CudaDeviceCount(); !gpus.ok() || *gpus < 1) {
      return Unavailable("--device cuda: no usable CUDA device here (",
                         gpus.ok() ? "none visible" : gpus.status().message(), ")");
    }
  }
  if (flags.kill_inference >= 0 && (flags.kill_inference >= job.inference_world() ||
                                    flags.kill_at_step < 1 || flags.kill_at_step >= flags.pushes)) {
    return InvalidArgument("--kill-inference must name an inference rank below ",
                           job.inference_world(), " and --kill-at-step a push before the last (",
                           flags.pushes, ")");
  }
  return Status::Ok();
}

Result<std::unique_ptr<control::StoreServer>> StartStore(const std::string& token) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(control::StoreServerOptions options,
                      control::StoreServerOptions::FromConfig(config));
  options.token = token;  // host stays loopback
  return control::StoreServer::Start(options);
}

int RunDemo(const DemoFlags& flags, bool as_json, const std::string& trace_path) {
  const auto fail = [](const Status& s) {
    std::cerr << "weightsync demo: " << s.ToString() << "\n";
    return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
  };
  const std::string token = RandomToken();
  Result<agent::AgentOptions> options = DemoAgentOptions(flags, "demo", "", token);
  if (!options.ok()) return fail(options.status());
  Result<agent::JobPlan> job = agent::BuildJobPlan(*options);
  if (!job.ok()) return fail(job.status());
  if (Status s = CheckDemoFlags(flags, *job); !s.ok()) return fail(s);
  Result<std::unique_ptr<control::StoreServer>> store = StartStore(token);
  if (!store.ok()) return fail(store.status());

  DemoReport report(flags, job->trainer_world(), job->inference_world(), as_json,
                    !as_json && ::isatty(STDERR_FILENO));
  report.PrintHeader(StrCat("weightsync demo: ", job->spec.name, " (", flags.preset, "), ",
                            job->trainer_world(), " trainer -> ", job->inference_world(),
                            " inference processes (", job->plan.options.inference.ToString(),
                            "), transport ", options->transport, ", plan ", job->plan.hash, ", ",
                            flags.pushes, " pushes"));
  std::vector<std::string> args = DemoFlagArgs(flags);
  args.insert(args.end(), {"--store", (*store)->address(), "--job", "demo"});
  DemoDriver driver(flags, std::move(args), token, report);
  if (Status s = driver.Start(job->trainer_world(), job->inference_world()); !s.ok()) {
    return fail(s);
  }
  driver.Run();
  const bool workers_ok = driver.Reap();
  return report.Finish(workers_ok, trace_path) ? 0 : 1;
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
      "demo",
      "Push changing weights from trainer processes into inference processes on this "
      "machine and verify every byte");
  cmd->option_defaults()->always_capture_default();  // --help shows every default
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
