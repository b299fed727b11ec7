#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>

#include "push/inference_push.h"
#include "push/markers.h"
#include "push/orchestrator.h"
#include "push/push_requests.h"
#include "push/push_test_util.h"
#include "push/trainer_push.h"

namespace weightsync::push {
namespace {

using control::Clock;
using control::Rendezvous;
using testing::Contains;
using testing::DeadlineIn;
using testing::FastOptions;
using testing::ParticipantId;
using testing::Role;
using testing::TestJob;
using testing::WaitForExit;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Counts hook calls; the post-update hook checks that every trainer's write of this step landed
// before it runs (the transfer barrier orders them).
struct EngineProbe {
  std::atomic<int> pauses{0};
  std::atomic<int> updates{0};
  std::atomic<int> resumes{0};
  InferenceHooks Hooks(std::function<Status()> post_update = {}) {
    InferenceHooks hooks;
    hooks.pause = [this] {
      ++pauses;
      return Status::Ok();
    };
    hooks.post_update.push_back([this, post_update] {
      ++updates;
      return post_update ? post_update() : Status::Ok();
    });
    hooks.resume = [this] {
      ++resumes;
      return Status::Ok();
    };
    return hooks;
  }
};

// Simulated weights: buffers[inference][trainer] holds the step the trainer last wrote there.
struct Buffers {
  explicit Buffers(int trainer_count, int inference_count)
      : cells(static_cast<size_t>(trainer_count * inference_count)), trainers(trainer_count) {}
  std::vector<std::atomic<uint64_t>> cells;
  int trainers;
  std::atomic<uint64_t>& At(int inference, int trainer) {
    return cells[static_cast<size_t>(inference * trainers + trainer)];
  }
};

// Runs `trainer_body` on T threads and `inference_body` on I threads; statuses by participant.
std::vector<Status> RunParticipants(TestJob& job, int trainers, int inference,
                                    const std::function<Status(Rendezvous&)>& trainer_body,
                                    const std::function<Status(Rendezvous&)>& inference_body,
                                    std::set<ParticipantId> skip = {}) {
  std::vector<ParticipantId> ids;
  for (int r = 0; r < trainers; ++r) ids.push_back({Role::kTrainer, r});
  for (int r = 0; r < inference; ++r) ids.push_back({Role::kInference, r});
  std::vector<Status> statuses(ids.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (skip.contains(ids[i])) continue;
    threads.emplace_back([&, i] {
      statuses[i] =
          job.RunAs(ids[i], ids[i].role == Role::kTrainer ? trainer_body : inference_body);
    });
  }
  for (auto& t : threads) t.join();
  return statuses;
}

class PushSizes : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(PushSizes, PushesCommitAndEveryBufferHoldsTheStep) {
  const auto [trainers, inference] = GetParam();
  constexpr int kPushes = 3;
  TestJob job(StrCat("sizes-", trainers, "-", inference), trainers, inference);
  Buffers buffers(trainers, inference);
  std::vector<EngineProbe> probes(static_cast<size_t>(inference));
  std::vector<InferenceSnapshot> final_states(static_cast<size_t>(inference));

  auto statuses = RunParticipants(
      job, trainers, inference,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions());
        for (uint64_t step = 1; step <= kPushes; ++step) {
          WS_RETURN_IF_ERROR(trainer.Push(step, [&] {
            for (int i = 0; i < inference; ++i) buffers.At(i, r.me().id.rank) = step;
            return Status::Ok();
          }));
          if (trainer.last_committed() != step) return Internal("not committed");
        }
        return Status::Ok();
      },
      [&](Rendezvous& r) -> Status {
        const int rank = r.me().id.rank;
        auto& probe = probes[static_cast<size_t>(rank)];
        InferencePush agent(r, FastOptions(), probe.Hooks());
        for (uint64_t expected = 1; expected <= kPushes; ++expected) {
          WS_ASSIGN_OR_RETURN(auto step, agent.AwaitPush(DeadlineIn(10)));
          if (step != expected) return Internal("wrong step");
          WS_RETURN_IF_ERROR(agent.StartTransfer());
          WS_RETURN_IF_ERROR(agent.FinishTransfer());
          // After the transfer barrier every trainer's write of this step is visible.
          for (int t = 0; t < trainers; ++t) {
            if (buffers.At(rank, t) != expected) return Internal("trainer ", t, " write missing");
          }
          WS_RETURN_IF_ERROR(agent.Commit(*step));
        }
        final_states[static_cast<size_t>(rank)] = agent.Snapshot();
        return Status::Ok();
      });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
  for (int i = 0; i < inference; ++i) {
    const auto& state = final_states[static_cast<size_t>(i)];
    EXPECT_EQ(state.state, InferenceState::kServing);
    EXPECT_EQ(state.committed_step, kPushes);
    EXPECT_FALSE(state.torn_step.has_value());
    EXPECT_EQ(probes[static_cast<size_t>(i)].pauses, kPushes);
    EXPECT_EQ(probes[static_cast<size_t>(i)].updates, kPushes);
    EXPECT_EQ(probes[static_cast<size_t>(i)].resumes, kPushes);
  }
  // Trainer rank 0 deleted the barrier keys of every step before the last committed one, so a
  // long job's store does not grow with every push.
  auto client = control::StoreClient::Connect(job.Store(), DeadlineIn(5));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto keys = (*client)->List(control::JobPrefix(job.job()) + "barrier/", DeadlineIn(5));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_FALSE(keys->empty());
  for (const auto& entry : *keys) {
    EXPECT_NE(entry.key.find(StrCat("/", kPushes, "/")), std::string::npos) << entry.key;
  }
}

INSTANTIATE_TEST_SUITE_P(Participants, PushSizes,
                         ::testing::Values(std::pair{1, 1}, std::pair{2, 3}, std::pair{3, 2},
                                           std::pair{8, 8}));

TEST(Push, ProcessesAndThreadsTogether) {
  TestJob job("procs", 2, 2);
  constexpr int kPushes = 2;
  pid_t trainer = job.Spawn({Role::kTrainer, 1}, "ok", kPushes);
  pid_t inference = job.Spawn({Role::kInference, 1}, "ok", kPushes);
  auto statuses = RunParticipants(
      job, 2, 2,
      [&](Rendezvous& r) -> Status {
        TrainerPush push(r, FastOptions());
        for (uint64_t step = 1; step <= kPushes; ++step) WS_RETURN_IF_ERROR(push.Push(step, {}));
        return Status::Ok();
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, FastOptions(), {});
        for (int i = 0; i < kPushes; ++i)
          WS_RETURN_IF_ERROR(agent.ServeOnePush(DeadlineIn(10)).status());
        return agent.Snapshot().committed_step == kPushes ? Status::Ok()
                                                          : Internal("not committed");
      },
      {{Role::kTrainer, 1}, {Role::kInference, 1}});
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(WaitForExit(trainer), 0);
  EXPECT_EQ(WaitForExit(inference), 0);
}

TEST(Push, NonIncreasingStepsAreRefusedNamingBoth) {
  TestJob job("steps", 1, 1);
  auto statuses = RunParticipants(
      job, 1, 1,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions());
        WS_RETURN_IF_ERROR(trainer.Push(5, {}));
        Status again = trainer.BeginPush(5);
        EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
        EXPECT_TRUE(Contains(again.message(), "push step 5 refused")) << again.message();
        EXPECT_TRUE(Contains(again.message(), "last attempted step 5")) << again.message();
        Status back = trainer.BeginPush(3);
        EXPECT_TRUE(Contains(back.message(), "push step 3 refused")) << back.message();
        // A restarted trainer (fresh object) is refused by the store's committed step.
        TrainerPush restarted(r, FastOptions());
        Status stale = restarted.BeginPush(4);
        EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition);
        EXPECT_TRUE(Contains(stale.message(), "not after the last committed step 5"))
            << stale.message();
        // So is an orchestrator writing the request itself.
        auto direct = RequestPush(*r.context().client, r.me().job_id, 5, "test", DeadlineIn(2));
        EXPECT_EQ(direct.status().code(), StatusCode::kFailedPrecondition);
        EXPECT_TRUE(Contains(direct.status().message(), "push step 5 refused"));
        EXPECT_TRUE(Contains(direct.status().message(), "last committed step 5"));
        return trainer.Push(6, {});
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, FastOptions(), {});
        WS_ASSIGN_OR_RETURN(auto first, agent.ServeOnePush(DeadlineIn(10)));
        WS_ASSIGN_OR_RETURN(auto second, agent.ServeOnePush(DeadlineIn(10)));
        EXPECT_EQ(first, 5u);
        EXPECT_EQ(second, 6u);
        return Status::Ok();
      });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

// A post-update hook fails at step 1: every inference rank ends torn(1) and refuses to resume;
// step 2 repairs them (torn -> committed(2) -> serving).
TEST(Push, FailingPostUpdateHookTearsEveryRankAndTheNextPushRepairs) {
  TestJob job("hook", 1, 2);
  std::vector<EngineProbe> probes(2);
  auto statuses = RunParticipants(
      job, 1, 2,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions());
        Status failed = trainer.Push(1, {});
        EXPECT_FALSE(failed.ok());
        EXPECT_TRUE(Contains(failed.message(), "push step 1: phase commit")) << failed.message();
        EXPECT_TRUE(Contains(failed.message(), "inference 1 failed in phase post-update"))
            << failed.message();
        return trainer.Push(2, {});
      },
      [&](Rendezvous& r) -> Status {
        const int rank = r.me().id.rank;
        auto& probe = probes[static_cast<size_t>(rank)];
        InferencePush agent(r, FastOptions(), probe.Hooks([&, rank]() -> Status {
          if (rank == 1 && probe.updates == 1) return DataLoss("kv_b_proj absorb failed");
          return Status::Ok();
        }));
        auto first = agent.ServeOnePush(DeadlineIn(10));
        EXPECT_FALSE(first.ok());
        if (rank == 1) {
          EXPECT_TRUE(Contains(first.status().message(), "push step 1: phase post-update"));
          EXPECT_TRUE(Contains(first.status().message(), "kv_b_proj absorb failed"));
        }
        InferenceSnapshot torn = agent.Snapshot();
        EXPECT_EQ(torn.state, InferenceState::kTorn);
        EXPECT_EQ(torn.torn_step, 1u);
        EXPECT_FALSE(torn.committed_step.has_value());
        Status resume = agent.Resume(/*force=*/false);
        EXPECT_EQ(resume.code(), StatusCode::kFailedPrecondition);
        EXPECT_TRUE(Contains(resume.message(), "torn at step 1")) << resume.message();
        EXPECT_EQ(probe.resumes, 0);
        WS_ASSIGN_OR_RETURN(auto second, agent.ServeOnePush(DeadlineIn(10)));
        EXPECT_EQ(second, 2u);
        InferenceSnapshot repaired = agent.Snapshot();
        EXPECT_EQ(repaired.state, InferenceState::kServing);
        EXPECT_EQ(repaired.committed_step, 2u);
        EXPECT_FALSE(repaired.torn_step.has_value());
        EXPECT_EQ(probe.pauses, 1);  // a torn engine is still paused: no second pause
        EXPECT_EQ(probe.resumes, 1);
        return Status::Ok();
      });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(Push, TransferErrorOnOneTrainerFailsEveryRankAtOnce) {
  TestJob job("xfer", 2, 1);
  auto start = Clock::now();
  auto statuses = RunParticipants(
      job, 2, 1,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions(30));
        return trainer.Push(1, [&] {
          return r.me().id.rank == 1 ? Unavailable("RDMA write to inference 0 failed")
                                     : Status::Ok();
        });
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, FastOptions(30), {});
        Status status = agent.ServeOnePush(DeadlineIn(10)).status();
        EXPECT_EQ(agent.Snapshot().state, InferenceState::kTorn);
        return status;
      });
  EXPECT_LT(SecondsSince(start), 10);  // long before the 30 s deadlines
  for (const auto& status : statuses) {
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(Contains(status.message(), "push step 1: phase transfer")) << status.message();
    EXPECT_TRUE(Contains(status.message(), "RDMA write to inference 0 failed")) << status.message();
  }
}

// A trainer whose data phase hangs (alive, heartbeating) runs into the transfer deadline; every
// other rank's error names it, the phase and the step.
TEST(Push, TransferDeadlineNamesTheMissingRank) {
  TestJob job("slow", 2, 1);
  auto statuses = RunParticipants(
      job, 2, 1,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions(1));
        return trainer.Push(1, [&] {
          if (r.me().id.rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2500));
          return Status::Ok();
        });
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, FastOptions(1), {});
        return agent.ServeOnePush(DeadlineIn(10)).status();
      });
  // Whoever times out first reports it; the others may learn it from that report (kAborted).
  for (size_t i : {size_t{0}, size_t{2}}) {
    EXPECT_TRUE(statuses[i].code() == StatusCode::kDeadlineExceeded ||
                statuses[i].code() == StatusCode::kAborted)
        << statuses[i].ToString();
    EXPECT_TRUE(Contains(statuses[i].message(), "push step 1: phase transfer"));
    EXPECT_TRUE(Contains(statuses[i].message(), "timed out after"));
    EXPECT_TRUE(Contains(statuses[i].message(), "missing trainer ranks [1]"))
        << statuses[i].message();
  }
  // The slow one learns it when it finishes.
  EXPECT_EQ(statuses[1].code(), StatusCode::kDeadlineExceeded) << statuses[1].ToString();
  EXPECT_TRUE(Contains(statuses[1].message(), "push.transfer_timeout")) << statuses[1].message();
}

// Inference 1 comes late: push 1 fails at its pause deadline, inference 0 (which paused) is
// torn(1). Inference 1 then sees request 1 already failed and skips it (it never paused, nothing
// was written to it); push 2 commits on both and repairs inference 0.
TEST(Push, LateRankSkipsAFailedPushAndTheNextPushRepairsTheTornOne) {
  TestJob job("late", 1, 2);
  std::atomic<bool> first_failed{false};
  auto statuses = RunParticipants(
      job, 1, 2,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, FastOptions(0.5));
        Status first = trainer.Push(1, {});
        EXPECT_EQ(first.code(), StatusCode::kDeadlineExceeded) << first.ToString();
        EXPECT_TRUE(Contains(first.message(), "push step 1: phase pause"));
        EXPECT_TRUE(Contains(first.message(), "missing inference ranks [1]")) << first.message();
        first_failed = true;
        TrainerPush patient(r, FastOptions(5));
        return patient.Push(2, {});
      },
      [&](Rendezvous& r) -> Status {
        EngineProbe probe;
        if (r.me().id.rank == 1) {
          auto deadline = DeadlineIn(10);
          while (!first_failed && !control::Expired(deadline)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the failure is recorded
        }
        InferencePush agent(r, FastOptions(5), probe.Hooks());
        if (r.me().id.rank == 0) {
          EXPECT_FALSE(agent.ServeOnePush(DeadlineIn(10)).ok());
          EXPECT_EQ(agent.Snapshot().state, InferenceState::kTorn);
        }
        WS_ASSIGN_OR_RETURN(auto step, agent.ServeOnePush(DeadlineIn(10)));
        EXPECT_EQ(step, 2u);
        InferenceSnapshot now = agent.Snapshot();
        EXPECT_EQ(now.state, InferenceState::kServing);
        EXPECT_EQ(now.committed_step, 2u);
        EXPECT_FALSE(now.torn_step.has_value());
        EXPECT_EQ(probe.pauses, 1);  // rank 1 never paused for step 1; rank 0 stayed paused
        return Status::Ok();
      });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(Push, OperatorHoldKeepsTheEngineCommittedUntilResume) {
  TestJob job("hold", 1, 1);
  EngineProbe probe;
  auto statuses = RunParticipants(
      job, 1, 1, [&](Rendezvous& r) { return TrainerPush(r, FastOptions()).Push(1, {}); },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, FastOptions(), probe.Hooks());
        WS_RETURN_IF_ERROR(agent.Pause());
        EXPECT_EQ(agent.Snapshot().state, InferenceState::kPaused);
        WS_RETURN_IF_ERROR(agent.ServeOnePush(DeadlineIn(10)).status());
        InferenceSnapshot held = agent.Snapshot();
        EXPECT_EQ(held.state, InferenceState::kCommitted);
        EXPECT_EQ(held.committed_step, 1u);
        EXPECT_EQ(probe.pauses, 1);  // paused once, by the operator
        EXPECT_EQ(probe.resumes, 0);
        WS_RETURN_IF_ERROR(agent.Resume(false));
        EXPECT_EQ(agent.Snapshot().state, InferenceState::kServing);
        EXPECT_EQ(probe.resumes, 1);
        return Status::Ok();
      });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(Push, ExternalOrchestratorRequestsEachOfferedStep) {
  TestJob job("external", 1, 1);
  PushOptions options = FastOptions();
  options.orchestrator = OrchestratorMode::kExternal;
  std::vector<OrchestratedPush> outcomes;
  std::thread orchestrator([&] {
    auto client = control::StoreClient::Connect(job.Store(), DeadlineIn(5));
    ASSERT_TRUE(client.ok());
    OrchestrateOptions orchestrate;
    orchestrate.job = job.job();
    orchestrate.offer_timeout_s = 10;
    orchestrate.outcome_timeout_s = 10;
    std::optional<uint64_t> after;
    for (int i = 0; i < 2; ++i) {
      auto push = OrchestrateOnePush(**client, orchestrate, after);
      ASSERT_TRUE(push.ok()) << push.status().ToString();
      outcomes.push_back(*push);
      after = push->step;
    }
  });
  auto statuses = RunParticipants(
      job, 1, 1,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, options);
        WS_RETURN_IF_ERROR(trainer.Push(10, {}));
        return trainer.Push(20, {});
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, options, {});
        WS_RETURN_IF_ERROR(agent.ServeOnePush(DeadlineIn(10)).status());
        return agent.ServeOnePush(DeadlineIn(10)).status();
      });
  orchestrator.join();
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].step, 10u);
  EXPECT_EQ(outcomes[1].step, 20u);
  EXPECT_TRUE(outcomes[0].committed && outcomes[1].committed);
}

// files mode: trainer rank 0 writes STABLE and waits for TRANSFER_READY before requesting. Without
// the marker the push fails at its pause deadline and the inference rank, never paused, is intact.
TEST(Push, FileMarkersGateThePushWithADeadline) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("ws-markers-", ::getpid());
  std::filesystem::remove_all(dir);
  TestJob job("files", 1, 1);
  PushOptions options = FastOptions(1.5);
  options.orchestrator = OrchestratorMode::kFiles;
  options.marker_dir = dir.string();
  std::thread file_orchestrator([&] {
    // Answers step 1 only.
    Status stable = WaitForMarker(MarkerPath(dir, 1, kStableMarker), DeadlineIn(5));
    EXPECT_TRUE(stable.ok()) << stable.ToString();
    EXPECT_TRUE(WriteMarker(MarkerPath(dir, 1, kTransferReadyMarker)).ok());
  });
  auto statuses = RunParticipants(
      job, 1, 1,
      [&](Rendezvous& r) -> Status {
        TrainerPush trainer(r, options);
        WS_RETURN_IF_ERROR(trainer.Push(1, {}));
        Status unanswered = trainer.Push(2, {});
        EXPECT_EQ(unanswered.code(), StatusCode::kDeadlineExceeded);
        EXPECT_TRUE(Contains(unanswered.message(), "push step 2: phase pause"));
        EXPECT_TRUE(Contains(unanswered.message(), "TRANSFER_READY")) << unanswered.message();
        EXPECT_TRUE(std::filesystem::exists(MarkerPath(dir, 2, kStableMarker)));
        return Status::Ok();
      },
      [&](Rendezvous& r) -> Status {
        InferencePush agent(r, options, {});
        WS_RETURN_IF_ERROR(agent.ServeOnePush(DeadlineIn(10)).status());
        WS_ASSIGN_OR_RETURN(auto none, agent.ServeOnePush(DeadlineIn(2.5)));
        EXPECT_FALSE(none.has_value());
        EXPECT_EQ(agent.Snapshot().state, InferenceState::kServing);
        EXPECT_EQ(agent.Snapshot().committed_step, 1u);
        return Status::Ok();
      });
  file_orchestrator.join();
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weightsync::push
