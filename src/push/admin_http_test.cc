#include "push/admin_http.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>

#include "control/socket.h"
#include "push/push_test_util.h"
#include "push/trainer_push.h"

namespace weightsync::push {
namespace {

using testing::Contains;
using testing::DeadlineIn;
using testing::FastOptions;
using testing::Role;
using testing::TestJob;

constexpr char kToken[] = "admin-token-42";

struct FakeEngine {
  std::atomic<int> pauses{0};
  std::atomic<bool> last_force{false};
  Status resume_result = Status::Ok();
  AdminHandlers Handlers() {
    AdminHandlers handlers;
    handlers.status_json = [] { return std::string(R"({"state":"serving","step":3})"); };
    handlers.is_paused = [this] { return pauses > 0; };
    handlers.pause = [this] {
      ++pauses;
      return Status::Ok();
    };
    handlers.resume = [this](bool force) {
      last_force = force;
      return force ? Status::Ok() : resume_result;
    };
    return handlers;
  }
};

std::unique_ptr<AdminServer> StartAdmin(AdminHandlers handlers) {
  AdminOptions options;
  options.token = kToken;
  options.io_timeout_s = 1;
  auto server = AdminServer::Start(options, std::move(handlers));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

httplib::Client Client(const AdminServer& server, const std::string& token = kToken) {
  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  if (!token.empty()) client.set_bearer_token_auth(token);
  return client;
}

TEST(AdminHttp, StatusPauseAndResume) {
  FakeEngine engine;
  engine.resume_result = FailedPrecondition("weights are torn at step 3");
  auto server = StartAdmin(engine.Handlers());
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->address().starts_with("127.0.0.1:"));
  auto client = Client(*server);

  auto status = client.Get("/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);
  EXPECT_EQ(nlohmann::json::parse(status->body)["state"], "serving");

  auto pause = client.Post("/pause");
  ASSERT_TRUE(pause);
  EXPECT_EQ(pause->status, 200);
  EXPECT_EQ(engine.pauses, 1);
  auto is_paused = client.Get("/is_paused");
  ASSERT_TRUE(is_paused);
  EXPECT_EQ(nlohmann::json::parse(is_paused->body)["is_paused"], true);

  auto refused = client.Post("/resume");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 409);
  EXPECT_TRUE(Contains(nlohmann::json::parse(refused->body)["error"], "torn at step 3"));
  auto forced = client.Post("/resume?force=1");
  ASSERT_TRUE(forced);
  EXPECT_EQ(forced->status, 200);
  EXPECT_TRUE(engine.last_force);

  auto unknown = client.Get("/nope");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
}

TEST(AdminHttp, WrongOrMissingTokenIs401) {
  FakeEngine engine;
  auto server = StartAdmin(engine.Handlers());
  ASSERT_TRUE(server);
  for (std::string token : {"", "wrong", "admin-token-4", "admin-token-421"}) {
    auto client = Client(*server, token);
    auto status = client.Get("/status");
    ASSERT_TRUE(status);
    EXPECT_EQ(status->status, 401) << token;
    auto pause = client.Post("/pause");
    ASSERT_TRUE(pause);
    EXPECT_EQ(pause->status, 401) << token;
  }
  httplib::Client basic("127.0.0.1", server->port());
  basic.set_basic_auth("user", kToken);
  EXPECT_EQ(basic.Get("/status")->status, 401);
  EXPECT_EQ(engine.pauses, 0);
}

TEST(AdminHttp, GarbageRequestsDoNotStopTheServer) {
  FakeEngine engine;
  auto server = StartAdmin(engine.Handlers());
  ASSERT_TRUE(server);
  std::mt19937 random(7);
  std::vector<std::string> garbage = {
      std::string("\x00\xff\xfe garbage\r\n\r\n", 15),
      "GET /status HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "POST /pause HTTP/1.1\r\nContent-Length: 1000000\r\nAuthorization: Bearer x\r\n\r\nabc",
      "GET /" + std::string(100000, 'a') + " HTTP/1.1\r\n\r\n",
      "GET /status HTTP/1.1\r\n" + std::string(20000, 'h') + "\r\n\r\n",
      "GET /status HTTP/9.9\r\n",  // then silence: the read timeout closes it
  };
  for (int i = 0; i < 20; ++i) {
    std::string bytes(static_cast<size_t>(random() % 4000), '\0');
    for (auto& b : bytes) b = static_cast<char>(random());
    garbage.push_back(bytes);
  }
  control::HostPort where{"127.0.0.1", server->port()};
  for (const auto& bytes : garbage) {
    auto fd = control::ConnectOnce(where, DeadlineIn(2));
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    (void)control::WriteAll(fd->get(), bytes, DeadlineIn(2));
  }
  auto client = Client(*server);
  auto status = client.Get("/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);
  EXPECT_EQ(engine.pauses, 0);
}

TEST(AdminHttp, RefusesToStartWithoutAToken) {
  FakeEngine engine;
  auto server = AdminServer::Start(AdminOptions{}, engine.Handlers());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
}

// The real agent behind the endpoint: a failed push leaves it torn; /resume is refused until
// forced; /status reports the state, the step and the phase timings.
TEST(AdminHttp, TornAgentRefusesResumeUntilForced) {
  TestJob job("admin", 1, 1);
  std::thread trainer([&] {
    Status status = job.RunAs({Role::kTrainer, 0}, [](control::Rendezvous& r) {
      return TrainerPush(r, FastOptions()).Push(4, [] { return Unavailable("link down"); });
    });
    EXPECT_FALSE(status.ok());
  });
  Status inference = job.RunAs({Role::kInference, 0}, [](control::Rendezvous& r) -> Status {
    InferencePush agent(r, FastOptions(), {});
    EXPECT_FALSE(agent.ServeOnePush(DeadlineIn(10)).ok());
    auto server = StartAdmin(AdminHandlersFor(agent));
    if (!server) return Internal("no server");
    auto client = Client(*server);
    auto status = nlohmann::json::parse(client.Get("/status")->body);
    EXPECT_EQ(status["state"], "torn");
    EXPECT_EQ(status["torn_step"], 4);
    EXPECT_EQ(status["step"], 4);
    EXPECT_TRUE(status["last_push"]["timings_s"].contains("transfer"));
    EXPECT_TRUE(Contains(status["last_error"], "link down")) << status.dump();
    EXPECT_EQ(client.Post("/resume")->status, 409);
    EXPECT_EQ(client.Post("/resume?force=1")->status, 200);
    EXPECT_EQ(nlohmann::json::parse(client.Get("/status")->body)["state"], "serving");
    return Status::Ok();
  });
  trainer.join();
  EXPECT_TRUE(inference.ok()) << inference.ToString();
}

}  // namespace
}  // namespace weightsync::push

namespace weightsync::push {
namespace {

// prime-rl style: an orchestrator pauses the engine over HTTP, the push commits while the engine
// is held paused (committed, not serving), and the orchestrator's /resume resumes it.
TEST(AdminHttp, HttpPauseHoldsTheEngineThroughAPushUntilHttpResume) {
  TestJob job("admin-hold", 1, 1);
  std::atomic<int> resumes{0};
  std::atomic<bool> paused{false};
  std::thread trainer([&] {
    Status status = job.RunAs({Role::kTrainer, 0}, [&](control::Rendezvous& r) {
      // Starts once the engine is held paused, as an orchestrator would order it.
      auto deadline = DeadlineIn(10);
      while (!paused && !control::Expired(deadline)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return TrainerPush(r, FastOptions()).Push(1, {});
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
  });
  Status inference = job.RunAs({Role::kInference, 0}, [&](control::Rendezvous& r) -> Status {
    InferenceHooks hooks;
    hooks.resume = [&] {
      ++resumes;
      return Status::Ok();
    };
    InferencePush agent(r, FastOptions(), hooks);
    auto server = StartAdmin(AdminHandlersFor(agent));
    if (!server) return Internal("no server");
    auto client = Client(*server);
    EXPECT_EQ(client.Post("/pause?mode=keep")->status, 200);
    paused = true;
    WS_RETURN_IF_ERROR(agent.ServeOnePush(DeadlineIn(10)).status());
    auto held = nlohmann::json::parse(client.Get("/status")->body);
    EXPECT_EQ(held["state"], "committed");
    EXPECT_EQ(held["committed_step"], 1);
    EXPECT_EQ(held["held_by_operator"], true);
    EXPECT_EQ(held["last_push"]["outcome"], "committed");
    EXPECT_EQ(nlohmann::json::parse(client.Get("/is_paused")->body)["is_paused"], true);
    EXPECT_EQ(resumes, 0);
    EXPECT_EQ(client.Post("/resume")->status, 200);
    EXPECT_EQ(resumes, 1);
    EXPECT_EQ(nlohmann::json::parse(client.Get("/status")->body)["state"], "serving");
    return Status::Ok();
  });
  trainer.join();
  EXPECT_TRUE(inference.ok()) << inference.ToString();
}

}  // namespace
}  // namespace weightsync::push
