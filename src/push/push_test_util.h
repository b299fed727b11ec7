// Helpers for the push tests: a job on a loopback store whose participants run on threads (each
// with its own store client, heartbeat and rendezvous) or in push_test_peer processes.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "control/liveness.h"
#include "control/rendezvous.h"
#include "control/test_util.h"
#include "push/push_types.h"

namespace weightsync::push::testing {

using control::DeadlineIn;
using control::ParticipantId;
using control::Role;
using control::testing::Contains;

inline constexpr control::LivenessOptions kFastLiveness{0.1, 0.5};

inline PushOptions FastOptions(double timeout_s = 5) {
  PushOptions options;
  options.pause_timeout_s = timeout_s;
  options.transfer_timeout_s = timeout_s;
  options.commit_timeout_s = timeout_s;
  return options;
}

// A store and a liveness watcher for one job.
class TestJob {
 public:
  TestJob(std::string job, int trainers, int inference)
      : job_(std::move(job)), trainers_(trainers), inference_(inference) {
    server_ = control::testing::StartTestStore();
    auto watcher = control::LivenessWatcher::Start(Store(), job_, kFastLiveness, DeadlineIn(5));
    EXPECT_TRUE(watcher.ok()) << watcher.status().ToString();
    if (watcher.ok()) watcher_ = std::move(*watcher);
  }

  control::StoreClientOptions Store() const {
    return control::testing::TestClientOptions(server_->address());
  }
  const std::string& job() const { return job_; }
  std::string address() const { return server_->address(); }

  // Connects, heartbeats and joins as `id`, then runs `body`; the returned status is body's.
  Status RunAs(ParticipantId id, const std::function<Status(control::Rendezvous&)>& body) {
    WS_ASSIGN_OR_RETURN(auto client, control::StoreClient::Connect(Store(), DeadlineIn(5)));
    WS_ASSIGN_OR_RETURN(auto heartbeat,
                        control::Heartbeat::Start(Store(), job_, id, kFastLiveness, DeadlineIn(5)));
    control::Membership me;
    me.job_id = job_;
    me.id = id;
    me.trainer_world_size = trainers_;
    me.inference_world_size = inference_;
    me.spec_hash = "spec-abc";
    WS_ASSIGN_OR_RETURN(auto rendezvous, control::Rendezvous::Join(*client, me, DeadlineIn(10)));
    rendezvous->SetLivenessWatcher(watcher_.get());
    return body(*rendezvous);
  }

  // Starts push_test_peer as `id` in `mode`; returns its pid.
  pid_t Spawn(ParticipantId id, const std::string& mode, int pushes = 1) {
    std::vector<std::string> args = {PUSH_TEST_PEER,
                                     address(),
                                     job_,
                                     std::string(control::RoleName(id.role)),
                                     std::to_string(id.rank),
                                     std::to_string(trainers_),
                                     std::to_string(inference_),
                                     mode,
                                     std::to_string(pushes)};
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setenv("WEIGHTSYNC_STORE_TOKEN", control::testing::kTestToken, 1);
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }

 private:
  std::string job_;
  int trainers_;
  int inference_;
  std::unique_ptr<control::StoreServer> server_;
  std::unique_ptr<control::LivenessWatcher> watcher_;
};

// Waits for a child and returns its exit code (-signal when killed).
inline int WaitForExit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1000;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

}  // namespace weightsync::push::testing
