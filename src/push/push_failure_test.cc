// kill -9 and SIGSTOP of a participant (a push_test_peer process) in each phase of a push: every
// other participant fails with an error naming the dead rank, the phase and the step, long before
// the deadlines; the inference ranks end torn and refuse to resume unless forced.
#include <gtest/gtest.h>

#include <atomic>

#include "push/inference_push.h"
#include "push/push_test_util.h"
#include "push/trainer_push.h"

namespace weightsync::push {
namespace {

using control::Clock;
using testing::Contains;
using testing::DeadlineIn;
using testing::FastOptions;
using testing::ParticipantId;
using testing::Role;
using testing::TestJob;
using testing::WaitForExit;

struct StrikeCase {
  const char* name;
  const char* mode;  // push_test_peer mode
  ParticipantId victim;
  const char* phase;  // the phase every survivor reports
  int signal;
};

void PrintTo(const StrikeCase& c, std::ostream* out) { *out << c.name; }

class Strike : public ::testing::TestWithParam<StrikeCase> {};

TEST_P(Strike, SurvivorsFailNamingTheVictimAndInferenceEndsTorn) {
  const StrikeCase& c = GetParam();
  constexpr double kDeadline = 10;
  TestJob job(StrCat("strike-", c.name), 2, 2);
  pid_t victim = job.Spawn(c.victim, c.mode);
  std::atomic<int64_t> struck_ns{0};
  std::thread striker([&] {
    auto client = control::StoreClient::Connect(job.Store(), DeadlineIn(5));
    ASSERT_TRUE(client.ok());
    auto reached = (*client)->Wait(StrCat("test/", job.job(), "/reached"), DeadlineIn(15));
    ASSERT_TRUE(reached.ok()) << reached.status().ToString();
    struck_ns = Clock::now().time_since_epoch().count();
    ::kill(victim, c.signal);
  });
  auto since_strike = [&] {
    return std::chrono::duration<double>(Clock::now().time_since_epoch() -
                                         Clock::duration(struck_ns.load()))
        .count();
  };

  std::vector<ParticipantId> survivors;
  for (ParticipantId id :
       {ParticipantId{Role::kTrainer, 0}, ParticipantId{Role::kTrainer, 1},
        ParticipantId{Role::kInference, 0}, ParticipantId{Role::kInference, 1}}) {
    if (id != c.victim) survivors.push_back(id);
  }
  std::vector<Status> statuses(survivors.size());
  std::vector<double> detected_after(survivors.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < survivors.size(); ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = job.RunAs(survivors[i], [&](control::Rendezvous& r) -> Status {
        if (r.me().id.role == Role::kTrainer) {
          Status pushed = TrainerPush(r, FastOptions(kDeadline)).Push(1, {});
          detected_after[i] = since_strike();
          return pushed;
        }
        InferencePush agent(r, FastOptions(kDeadline), {});
        Status served = agent.ServeOnePush(DeadlineIn(20)).status();
        detected_after[i] = since_strike();
        InferenceSnapshot torn = agent.Snapshot();
        EXPECT_EQ(torn.state, InferenceState::kTorn);
        EXPECT_EQ(torn.torn_step, 1u);
        Status refused = agent.Resume(false);
        EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
        EXPECT_TRUE(agent.Resume(true).ok());  // forced: serves the torn weights (logged)
        EXPECT_EQ(agent.Snapshot().state, InferenceState::kServing);
        EXPECT_EQ(agent.Snapshot().torn_step, 1u);  // still known to be torn
        return served;
      });
    });
  }
  for (auto& t : threads) t.join();
  striker.join();
  if (c.signal != SIGKILL) ::kill(victim, SIGKILL);
  WaitForExit(victim);

  for (size_t i = 0; i < survivors.size(); ++i) {
    SCOPED_TRACE(survivors[i].ToString());
    const Status& status = statuses[i];
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(Contains(status.message(), StrCat("push step 1: phase ", c.phase)))
        << status.message();
    EXPECT_TRUE(Contains(status.message(), c.victim.ToString())) << status.message();
    EXPECT_LT(detected_after[i], kDeadline / 2) << status.message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Phases, Strike,
    ::testing::Values(
        StrikeCase{"kill_in_pause", "stall-pause", {Role::kInference, 1}, "pause", SIGKILL},
        StrikeCase{"kill_in_transfer", "stall-transfer", {Role::kTrainer, 1}, "transfer", SIGKILL},
        StrikeCase{"kill_in_commit", "stall-commit", {Role::kTrainer, 1}, "commit", SIGKILL},
        StrikeCase{"stop_in_transfer", "stall-transfer", {Role::kTrainer, 1}, "transfer", SIGSTOP}),
    [](const auto& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace weightsync::push
