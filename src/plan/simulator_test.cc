#include "plan/simulator.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

TEST(Simulator, BoundsAndCoverage) {
  ModelDims d = *PresetDims("deepseek_v3");
  d.layers = 4;
  d.first_k_dense = 1;
  d.experts = 16;
  PlanOptions o;
  o.trainer.fsdp = 8;
  o.trainer.ep = 2;
  o.inference.dp = 4;
  o.inference.expert_parallel = true;
  o.inference.replicas = 2;
  auto plan = BuildTransferPlan(*ModelSpecLibrary::Builtin().Load("deepseek_v3"), d, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  NetworkModel net;
  SimulationReport r = Simulate(*plan, net);
  EXPECT_TRUE(r.coverage_ok) << r.coverage_error;
  EXPECT_GT(r.inference_bytes_held_per_gpu_max, 0);
  EXPECT_EQ(r.bytes_total, r.inference_bytes_held_per_gpu_mean * 8);
  const double receiver = static_cast<double>(r.inference_bytes_held_per_gpu_max) / 50e9;
  EXPECT_DOUBLE_EQ(r.receiver_seconds, receiver);
  EXPECT_GE(r.speed_of_light_seconds, receiver);
  EXPECT_GE(r.predicted_seconds, r.speed_of_light_seconds);
  EXPECT_GE(r.trainer_nic_bytes_max, r.trainer_nic_bytes_mean);

  // Slower NICs: everything that moves bytes gets slower.
  NetworkModel slow = net;
  slow.nic_bytes_per_second = 5e9;
  EXPECT_GT(Simulate(*plan, slow).predicted_seconds, 5 * r.predicted_seconds);

  TransferPlan broken = *plan;
  broken.writes.back().bytes -= 1;
  SimulationReport bad = Simulate(broken, net);
  EXPECT_FALSE(bad.coverage_ok);
  EXPECT_FALSE(bad.coverage_error.empty());
}

}  // namespace
}  // namespace weightsync
