// The agents in one process (one thread per rank, UCX between them): a push verified against the
// reference; bad input refused, named, before any byte of an inference rank's memory changes.
#include <gtest/gtest.h>

#include <thread>

#include "agent/inference_agent.h"
#include "agent/trainer_agent.h"
#include "control/collective.h"
#include "control/test_util.h"
#include "demo/demo_reference.h"
#include "demo/demo_weights.h"
#include "transport/transport.h"

namespace weightsync::demo {
namespace {

using control::testing::Contains;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    transport::TransportOptions t;
    if (!transport::ProbeBackend("ucx", t).available) GTEST_SKIP() << "UCX is not available here";
    store_ = control::testing::StartTestStore();
    options_.job_id = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    options_.store = control::testing::TestClientOptions(store_->address());
    options_.model = "glm_moe_dsa";
    options_.dims = *PresetDims("glm5_tiny");
    options_.plan.source_format = "hf";
    options_.plan.trainer.fsdp = 1;
    options_.plan.inference.tp = 1;
    options_.transport = "ucx";
    options_.liveness = {0.1, 2};
    options_.push.pause_timeout_s = options_.push.transfer_timeout_s =
        options_.push.commit_timeout_s = 20;
    options_.join_timeout_s = 20;
    auto job = agent::BuildJobPlan(options_);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    job_ = std::make_unique<agent::JobPlan>(std::move(*job));
    weights_ = std::make_unique<DemoWeights>(*job_, 7);
    weights_->Fill(1);
    for (const agent::DestinationTensor& d : job_->DestinationsOf(0)) {
      memory_[d.name].assign(d.bytes(), 0xA5);
      views_[d.name] = TensorView::Contiguous(memory_[d.name].data(), d.shape, d.dtype);
    }
  }

  // Runs the trainer's `body` and the inference rank's `serve` on two threads.
  void Run(std::map<std::string, TensorView> sources, std::map<std::string, TensorView> views,
           const std::function<void(Result<std::unique_ptr<agent::TrainerAgent>>)>& trainer,
           const std::function<void(Result<std::unique_ptr<agent::InferenceAgent>>)>& engine) {
    std::thread inference([&] { engine(agent::InferenceAgent::Create(options_, 0, views)); });
    trainer(agent::TrainerAgent::Create(options_, 0, sources));
    inference.join();
  }

  std::unique_ptr<control::StoreServer> store_;
  agent::AgentOptions options_;
  std::unique_ptr<agent::JobPlan> job_;
  std::unique_ptr<DemoWeights> weights_;
  std::map<std::string, std::vector<uint8_t>> memory_;
  std::map<std::string, TensorView> views_;
};

TEST_F(AgentTest, NanSourceIsRefusedBeforeAnyInferenceByteChanges) {
  const std::string poisoned = "model.layers.2.mlp.experts.3.down_proj.weight";
  std::map<std::string, std::vector<uint8_t>> after_step_1;
  Run(*weights_->ShardViews(0), views_,
      [&](Result<std::unique_ptr<agent::TrainerAgent>> trainer) {
        ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
        ASSERT_TRUE((*trainer)->Push(1).ok());
        weights_->Fill(2);
        // A NaN deep in the last layer, which the plan converts late.
        TensorView bad = weights_->full().at(poisoned);
        static_cast<uint16_t*>(bad.data)[5 * bad.shape[1] + 9] = 0x7fc0;
        Result<agent::PushReport> push = (*trainer)->Push(2);
        ASSERT_FALSE(push.ok());
        EXPECT_TRUE(Contains(push.status().ToString(), poisoned)) << push.status().ToString();
        EXPECT_TRUE(Contains(push.status().ToString(), "row 5")) << push.status().ToString();
      },
      [&](Result<std::unique_ptr<agent::InferenceAgent>> engine) {
        ASSERT_TRUE(engine.ok()) << engine.status().ToString();
        auto first = (*engine)->ServeOnePush(20);
        ASSERT_TRUE(first.ok() && first->has_value()) << first.status().ToString();
        after_step_1 = memory_;
        auto second = (*engine)->ServeOnePush(20);
        EXPECT_FALSE(second.ok());
        EXPECT_EQ((*engine)->Snapshot().state, push::InferenceState::kTorn);
      });
  // Step 1's bytes are still there, every one of them.
  EXPECT_TRUE(memory_ == after_step_1);
  weights_->Fill(1);
  auto reference = ReferenceDestinations::Compute(*job_, weights_->full(), 1);
  ASSERT_TRUE(reference.ok());
  EXPECT_TRUE(reference->Verify(*job_, 0, views_).ok());
}

// An inference rank waiting for a push learns at once that another rank aborted the job (a
// trainer whose set-up failed after the exchange), with that rank's reason, not at its timeout.
TEST_F(AgentTest, WaitingInferenceRankSeesTheJobAbortedWithTheReason) {
  Run(*weights_->ShardViews(0), views_,
      [&](Result<std::unique_ptr<agent::TrainerAgent>> trainer) {
        ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
        auto client = control::testing::ConnectTestClient(store_->address());
        ASSERT_TRUE(client->Set(control::AbortKey(options_.job_id),
                                "trainer 0: cannot import inference 0's region X",
                                control::DeadlineIn(5))
                        .ok());
      },
      [&](Result<std::unique_ptr<agent::InferenceAgent>> engine) {
        ASSERT_TRUE(engine.ok()) << engine.status().ToString();
        const auto start = control::Clock::now();
        auto served = (*engine)->ServeOnePush(30);
        ASSERT_FALSE(served.ok());
        EXPECT_TRUE(Contains(served.status().ToString(), "region X")) << served.status().ToString();
        EXPECT_LT(control::Clock::now() - start, std::chrono::seconds(10));
      });
}

TEST_F(AgentTest, WrongDestinationShapeFailsEveryRankNamingTheTensor) {
  const std::string name = "model.layers.1.self_attn.kv_b_proj.weight";
  auto views = views_;
  views[name].shape[0] -= 128;
  Run(*weights_->ShardViews(0), views,
      [&](Result<std::unique_ptr<agent::TrainerAgent>> trainer) {
        ASSERT_FALSE(trainer.ok());
        EXPECT_TRUE(Contains(trainer.status().ToString(), name)) << trainer.status().ToString();
      },
      [&](Result<std::unique_ptr<agent::InferenceAgent>> engine) {
        ASSERT_FALSE(engine.ok());
        EXPECT_TRUE(Contains(engine.status().ToString(), name)) << engine.status().ToString();
      });
}

TEST_F(AgentTest, MissingSourceTensorIsNamed) {
  auto sources = *weights_->ShardViews(0);
  sources.erase("model.norm.weight");
  Run(sources, views_,
      [&](Result<std::unique_ptr<agent::TrainerAgent>> trainer) {
        ASSERT_FALSE(trainer.ok());
        EXPECT_TRUE(Contains(trainer.status().ToString(), "model.norm.weight"))
            << trainer.status().ToString();
      },
      [&](Result<std::unique_ptr<agent::InferenceAgent>> engine) {
        ASSERT_FALSE(engine.ok());
        EXPECT_TRUE(Contains(engine.status().ToString(), "model.norm.weight"))
            << engine.status().ToString();
      });
}

TEST(ReferenceDestinations, RefusesMemoryThatWasNeverWritten) {
  agent::AgentOptions options;
  options.model = "glm_moe_dsa";
  options.dims = *PresetDims("glm5_tiny");
  options.plan.source_format = "hf";
  options.plan.inference.tp = 2;
  auto job = agent::BuildJobPlan(options);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  DemoWeights weights(*job, 3);
  weights.Fill(1);
  auto reference = ReferenceDestinations::Compute(*job, weights.full(), 1);
  ASSERT_TRUE(reference.ok());
  std::map<std::string, std::vector<uint8_t>> memory;
  std::map<std::string, TensorView> views;
  for (const agent::DestinationTensor& d : job->DestinationsOf(1)) {
    memory[d.name].assign(d.bytes(), 0);
    views[d.name] = TensorView::Contiguous(memory[d.name].data(), d.shape, d.dtype);
  }
  EXPECT_FALSE(reference->Verify(*job, 1, views).ok());  // all zeros: not the reference
}

}  // namespace
}  // namespace weightsync::demo
