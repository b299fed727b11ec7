#include "control/rendezvous.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>
#include <vector>

#include "control/barrier.h"
#include "control/test_util.h"

namespace weightsync::control {
namespace {

using testing::ConnectTestClient;
using testing::Contains;
using testing::StartTestStore;

Membership Member(std::string job, Role role, int rank, int trainers, int inference) {
  Membership m;
  m.job_id = std::move(job);
  m.id = {role, rank};
  m.trainer_world_size = trainers;
  m.inference_world_size = inference;
  m.protocol_version = 1;
  m.spec_hash = "spec-abc";
  return m;
}

// Runs `body` on one thread per participant (each with its own client) and returns the statuses
// in participant order.
std::vector<Status> RunJob(const std::string& address, const std::string& job, int trainers,
                           int inference,
                           const std::function<Status(Rendezvous&, StoreClient&)>& body,
                           double join_timeout = 10) {
  std::vector<Membership> members;
  for (int r = 0; r < trainers; ++r)
    members.push_back(Member(job, Role::kTrainer, r, trainers, inference));
  for (int r = 0; r < inference; ++r) {
    members.push_back(Member(job, Role::kInference, r, trainers, inference));
  }
  std::vector<Status> statuses(members.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < members.size(); ++i) {
    threads.emplace_back([&, i] {
      auto client = ConnectTestClient(address);
      if (!client) {
        statuses[i] = Unavailable("no client");
        return;
      }
      auto rendezvous = Rendezvous::Join(*client, members[i], DeadlineIn(join_timeout));
      statuses[i] = rendezvous.ok() ? body(**rendezvous, *client) : rendezvous.status();
    });
  }
  for (auto& t : threads) t.join();
  return statuses;
}

Status CheckRound(Rendezvous& rendezvous, std::string_view name) {
  std::string mine = StrCat(name, ":", rendezvous.me().id.ToString());
  WS_ASSIGN_OR_RETURN(auto entries, rendezvous.Round(name, mine, DeadlineIn(20)));
  if (entries.size() != rendezvous.participants().size()) return Internal("wrong entry count");
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].id != rendezvous.participants()[i]) return Internal("wrong order");
    if (entries[i].payload != StrCat(name, ":", entries[i].id.ToString())) {
      return Internal("wrong payload from ", entries[i].id.ToString(), ": ", entries[i].payload);
    }
  }
  return Status::Ok();
}

class RendezvousSizes : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(RendezvousSizes, TwoRoundsGatherEveryPayload) {
  auto server = StartTestStore();
  auto [trainers, inference] = GetParam();
  auto statuses = RunJob(server->address(), "job", trainers, inference,
                         [](Rendezvous& rendezvous, StoreClient&) {
                           WS_RETURN_IF_ERROR(CheckRound(rendezvous, "layouts"));
                           return CheckRound(rendezvous, "transport");
                         });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

// 1, 2, 8 and 64 participants in all.
INSTANTIATE_TEST_SUITE_P(Participants, RendezvousSizes,
                         ::testing::Values(std::pair{1, 0}, std::pair{1, 1}, std::pair{4, 4},
                                           std::pair{32, 32}));

TEST(Rendezvous, SeveralJobsShareOneStore) {
  auto server = StartTestStore();
  std::vector<Status> a;
  std::vector<Status> b;
  std::thread other([&] {
    b = RunJob(server->address(), "job-b", 2, 1,
               [](Rendezvous& r, StoreClient&) { return CheckRound(r, "layouts"); });
  });
  a = RunJob(server->address(), "job-a", 1, 2,
             [](Rendezvous& r, StoreClient&) { return CheckRound(r, "layouts"); });
  other.join();
  for (const auto& status : a) EXPECT_TRUE(status.ok()) << status.ToString();
  for (const auto& status : b) EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(Rendezvous, DuplicateRankIsRefusedNamingBoth) {
  auto server = StartTestStore();
  auto first_client = ConnectTestClient(server->address());
  auto second_client = ConnectTestClient(server->address());
  auto first =
      Rendezvous::Join(*first_client, Member("dup", Role::kTrainer, 0, 2, 1), DeadlineIn(2));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second =
      Rendezvous::Join(*second_client, Member("dup", Role::kTrainer, 0, 2, 1), DeadlineIn(2));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  const std::string& message = second.status().message();
  EXPECT_TRUE(Contains(message, "trainer 0 is already taken by pid ")) << message;
  EXPECT_TRUE(Contains(message, "; refusing pid ")) << message;
}

TEST(Rendezvous, RestartedProcessTakesOverOnlyADeadHoldersRank) {
  auto server = StartTestStore();
  auto first_client = ConnectTestClient(server->address());
  Membership me = Member("restart", Role::kInference, 0, 1, 1);
  me.take_over_dead_holder = true;
  auto first = Rendezvous::Join(*first_client, me, DeadlineIn(2));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE((*first)->rejoined());
  // The holder heartbeats: its rank is not taken, even by a joiner allowed to take over.
  auto heartbeat = Heartbeat::Start(testing::TestClientOptions(server->address()), "restart", me.id,
                                    {0.1, 1}, DeadlineIn(2));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status().ToString();
  auto second_client = ConnectTestClient(server->address());
  auto refused = Rendezvous::Join(*second_client, me, DeadlineIn(2));
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists) << refused.status().ToString();
  // Its heartbeat connection closes (the process died): the restarted process takes over.
  heartbeat->reset();
  auto rejoined = Rendezvous::Join(*second_client, me, DeadlineIn(2));
  ASSERT_TRUE(rejoined.ok()) << rejoined.status().ToString();
  EXPECT_TRUE((*rejoined)->rejoined());
  // Without the permission, a dead holder's rank is still refused.
  me.take_over_dead_holder = false;
  auto third_client = ConnectTestClient(server->address());
  EXPECT_EQ(Rendezvous::Join(*third_client, me, DeadlineIn(2)).status().code(),
            StatusCode::kAlreadyExists);
}

TEST(Rendezvous, MismatchedWorldSizeIsRefusedNamingTheRanks) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  auto other_client = ConnectTestClient(server->address());
  auto first = Rendezvous::Join(*client, Member("ws", Role::kTrainer, 0, 2, 2), DeadlineIn(2));
  ASSERT_TRUE(first.ok());
  auto second =
      Rendezvous::Join(*other_client, Member("ws", Role::kInference, 1, 2, 4), DeadlineIn(2));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  const std::string& message = second.status().message();
  EXPECT_TRUE(Contains(message, "inference 1 declares inference_world_size '4'")) << message;
  EXPECT_TRUE(Contains(message, "(trainer 0 declared '2')")) << message;
  // The refusal aborts the job, so the first joiner's round fails now rather than at its deadline.
  auto start = Clock::now();
  auto round = (*first)->Round("layouts", "x", DeadlineIn(10));
  EXPECT_EQ(round.status().code(), StatusCode::kAborted);
  EXPECT_TRUE(Contains(round.status().message(), "inference 1 declares"))
      << round.status().ToString();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(Rendezvous, MismatchedSpecHashAndVersionAreRefused) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  ASSERT_TRUE(
      Rendezvous::Join(*client, Member("spec", Role::kTrainer, 0, 1, 2), DeadlineIn(2)).ok());
  Membership other = Member("spec", Role::kInference, 0, 1, 2);
  other.spec_hash = "spec-xyz";
  other.protocol_version = 2;
  auto refused = Rendezvous::Join(*client, other, DeadlineIn(2));
  ASSERT_FALSE(refused.ok());
  const std::string& message = refused.status().message();
  EXPECT_TRUE(Contains(message, "spec_hash 'spec-xyz' (trainer 0 declared 'spec-abc')")) << message;
  EXPECT_TRUE(Contains(message, "protocol_version '2'")) << message;
}

TEST(Rendezvous, RankOutsideWorldIsInvalid) {
  auto server = StartTestStore();
  auto client = ConnectTestClient(server->address());
  auto refused = Rendezvous::Join(*client, Member("r", Role::kInference, 3, 1, 2), DeadlineIn(2));
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  auto bad_job = Rendezvous::Join(*client, Member("a/b", Role::kTrainer, 0, 1, 1), DeadlineIn(2));
  EXPECT_EQ(bad_job.status().code(), StatusCode::kInvalidArgument);
}

TEST(Rendezvous, MissingParticipantsAreListedAtTheDeadline) {
  auto server = StartTestStore();
  // World: trainers 0-1, inference 0-2; trainer 1 and inference 2 never come.
  std::vector<Status> statuses(3);
  std::vector<std::thread> threads;
  std::vector<Membership> present = {Member("miss", Role::kTrainer, 0, 2, 3),
                                     Member("miss", Role::kInference, 0, 2, 3),
                                     Member("miss", Role::kInference, 1, 2, 3)};
  auto start = Clock::now();
  for (size_t i = 0; i < present.size(); ++i) {
    threads.emplace_back([&, i] {
      auto client = ConnectTestClient(server->address());
      auto rendezvous = Rendezvous::Join(*client, present[i], DeadlineIn(2)).value();
      statuses[i] = rendezvous->Round("layouts", "p", DeadlineIn(0.5)).status();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  for (const auto& status : statuses) {
    EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(Contains(status.message(), "missing trainer ranks [1]; inference ranks [2]"))
        << status.message();
    EXPECT_TRUE(Contains(status.message(), "round 'layouts'")) << status.message();
  }
}

TEST(Barrier, ReusableAcrossGenerations) {
  auto server = StartTestStore();
  constexpr int kSteps = 5;
  auto statuses = RunJob(server->address(), "bar", 2, 2, [](Rendezvous& r, StoreClient&) {
    Barrier barrier(r, "step");
    for (int step = 0; step < kSteps; ++step)
      WS_RETURN_IF_ERROR(barrier.ArriveNext(DeadlineIn(10)));
    return Status::Ok();
  });
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(Barrier, ArrivalsForAnEarlierStepDoNotSatisfyTheNext) {
  auto server = StartTestStore();
  auto c0 = ConnectTestClient(server->address());
  auto c1 = ConnectTestClient(server->address());
  auto r0 = Rendezvous::Join(*c0, Member("gen", Role::kTrainer, 0, 1, 1), DeadlineIn(2)).value();
  auto r1 = Rendezvous::Join(*c1, Member("gen", Role::kInference, 0, 1, 1), DeadlineIn(2)).value();
  Barrier b0(*r0, "update");
  Barrier b1(*r1, "update");
  // Step 7 completes for both.
  std::thread t([&] { EXPECT_TRUE(b1.Arrive(7, DeadlineIn(5)).ok()); });
  ASSERT_TRUE(b0.Arrive(7, DeadlineIn(5)).ok());
  t.join();
  // Step 8: only trainer 0 arrives. Inference 0's arrival at step 7 must not count.
  Status step8 = b0.Arrive(8, DeadlineIn(0.4));
  EXPECT_EQ(step8.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(Contains(step8.message(), "missing inference ranks [0]")) << step8.message();
  EXPECT_TRUE(Contains(step8.message(), "generation 8")) << step8.message();
  // Inference 0 arrives late at step 8: trainer 0's earlier arrival stands, so it passes at once.
  EXPECT_TRUE(b1.Arrive(8, DeadlineIn(2)).ok());
}

}  // namespace
}  // namespace weightsync::control
