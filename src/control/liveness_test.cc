#include "control/liveness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <thread>
#include <vector>

#include "control/auth.h"
#include "control/barrier.h"
#include "control/rendezvous.h"
#include "control/test_util.h"

extern char** environ;

namespace weightsync::control {
namespace {

using testing::ConnectTestClient;
using testing::Contains;
using testing::StartTestStore;
using testing::TestClientOptions;

constexpr LivenessOptions kFast{/*heartbeat_interval_s=*/0.05, /*liveness_timeout_s=*/0.5};

// A control_test_peer process; killed (if still running) and reaped on destruction.
class Peer {
 public:
  Peer(const std::string& address, const std::string& job, Role role, int rank, int trainers,
       int inference, const std::string& mode) {
    std::vector<std::string> args = {CONTROL_TEST_PEER,
                                     address,
                                     job,
                                     std::string(RoleName(role)),
                                     std::to_string(rank),
                                     std::to_string(trainers),
                                     std::to_string(inference),
                                     mode};
    std::vector<std::string> env = {StrCat(kStoreTokenEnv, "=", testing::kTestToken)};
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    std::vector<char*> argv;
    std::vector<char*> envp;
    for (auto& a : args) argv.push_back(a.data());
    for (auto& e : env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, CONTROL_TEST_PEER, nullptr, nullptr, argv.data(), envp.data()), 0);
  }
  ~Peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      Wait();
    }
  }
  pid_t pid() const { return pid_; }
  // The exit code, or -signal.
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

Membership Member(const std::string& job, Role role, int rank, int trainers, int inference) {
  Membership m;
  m.job_id = job;
  m.id = {role, rank};
  m.trainer_world_size = trainers;
  m.inference_world_size = inference;
  m.spec_hash = "spec-abc";
  return m;
}

bool WaitForKey(StoreClient& client, const std::string& key) {
  return client.Wait(key, DeadlineIn(10)).ok();
}

TEST(Liveness, HealthyHeartbeatsAreNotReported) {
  auto server = StartTestStore();
  auto options = TestClientOptions(server->address());
  auto a = Heartbeat::Start(options, "live", {Role::kTrainer, 0}, kFast, DeadlineIn(2)).value();
  auto b = Heartbeat::Start(options, "live", {Role::kInference, 0}, kFast, DeadlineIn(2)).value();
  auto watcher = LivenessWatcher::Start(options, "live", kFast, DeadlineIn(2)).value();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_TRUE(watcher->Failures().empty());
  b->Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto failures = watcher->Failures();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].ToString(), "peer inference 0 stopped (it shut down its heartbeat)");
  ParticipantId trainer{Role::kTrainer, 0};
  EXPECT_TRUE(watcher->CheckAlive({&trainer, 1}).ok());
}

// A participant whose heartbeat vanished before the watcher's first scan ever saw it (killed
// within milliseconds of starting) is still reported, thanks to its persistent "seen" marker.
TEST(Liveness, ParticipantThatDiedBeforeTheFirstScanIsReported) {
  auto server = StartTestStore();
  auto options = TestClientOptions(server->address());
  auto client = ConnectTestClient(server->address());
  {
    auto beat = Heartbeat::Start(options, "early", {Role::kTrainer, 0}, kFast, DeadlineIn(2));
    ASSERT_TRUE(beat.ok());
    EXPECT_TRUE(
        client->Get(LivenessKey("early", {Role::kTrainer, 0}) + "/seen", DeadlineIn(2)).ok());
  }
  // What a killed participant leaves: the marker, without its ephemeral heartbeat.
  ASSERT_TRUE(
      client->Set(LivenessKey("early", {Role::kInference, 2}) + "/seen", "1", DeadlineIn(2)).ok());
  auto watcher = LivenessWatcher::Start(options, "early", kFast, DeadlineIn(2)).value();
  auto failures = watcher->Failures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].ToString(), "peer trainer 0 stopped (it shut down its heartbeat)");
  EXPECT_EQ(failures[1].ToString(), "peer inference 2 died (its store connection closed)");
}

TEST(Liveness, TimeoutMustExceedInterval) {
  EXPECT_FALSE((LivenessOptions{1, 1}).Validate().ok());
  EXPECT_TRUE(LivenessOptions::FromConfig(Config::Defaults()).ok());
}

TEST(MultiProcess, RendezvousOfFourProcesses) {
  auto server = StartTestStore();
  std::vector<std::unique_ptr<Peer>> peers;
  for (int r = 0; r < 2; ++r) {
    peers.push_back(
        std::make_unique<Peer>(server->address(), "procs", Role::kTrainer, r, 2, 2, "rounds"));
    peers.push_back(
        std::make_unique<Peer>(server->address(), "procs", Role::kInference, r, 2, 2, "rounds"));
  }
  for (auto& peer : peers) EXPECT_EQ(peer->Wait(), 0);
}

// This process is trainer 0; a child process is inference 0 and heartbeats. Returns the status of
// a barrier trainer 0 waits in after `disturb` was done to the child, and how long it took.
std::pair<Status, double> BarrierAfter(int signal) {
  auto server = StartTestStore();
  auto store = TestClientOptions(server->address());
  const std::string job = StrCat("kill", signal);
  Peer child(server->address(), job, Role::kInference, 0, 1, 1, "hang");

  auto client = ConnectTestClient(server->address());
  auto rendezvous =
      Rendezvous::Join(*client, Member(job, Role::kTrainer, 0, 1, 1), DeadlineIn(5)).value();
  auto heartbeat = Heartbeat::Start(store, job, {Role::kTrainer, 0}, kFast, DeadlineIn(5)).value();
  auto watcher = LivenessWatcher::Start(store, job, kFast, DeadlineIn(5)).value();
  rendezvous->SetLivenessWatcher(watcher.get());
  EXPECT_TRUE(WaitForKey(*client, LivenessKey(job, {Role::kInference, 0})));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the watcher has seen it beat

  ::kill(child.pid(), signal);
  auto start = Clock::now();
  Barrier barrier(*rendezvous, "step");
  Status status = barrier.Arrive(1, DeadlineIn(10));
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return {status, elapsed};
}

TEST(MultiProcess, KilledParticipantIsDetectedWithinTheLivenessTimeout) {
  auto [status, elapsed] = BarrierAfter(SIGKILL);
  EXPECT_EQ(status.code(), StatusCode::kAborted);
  EXPECT_TRUE(Contains(status.message(), "peer inference 0 died")) << status.message();
  EXPECT_TRUE(Contains(status.message(), "barrier 'step' generation 1")) << status.message();
  EXPECT_LT(elapsed, kFast.liveness_timeout_s + 1.5);  // far below the barrier's 10 s deadline
}

TEST(MultiProcess, FrozenParticipantIsDetectedWhenItStopsHeartbeating) {
  auto [status, elapsed] = BarrierAfter(SIGSTOP);
  EXPECT_EQ(status.code(), StatusCode::kAborted);
  EXPECT_TRUE(Contains(status.message(), "peer inference 0 stopped heartbeating"))
      << status.message();
  EXPECT_GE(elapsed, kFast.liveness_timeout_s - 0.2);
  EXPECT_LT(elapsed, kFast.liveness_timeout_s + 2.0);
}

}  // namespace
}  // namespace weightsync::control
