// The NCCL mode's receive side (agent/nccl_receiver.h) run on the CPU: the plan of conversions and
// tensor-parallel slice copies that an inference rank executes on its GPU, executed here with
// ConvertReference and memcpy, must leave exactly the demo reference's bytes on every rank, for
// tensor-parallel, expert-parallel and replicated layouts.
#include <gtest/gtest.h>

#include <cstring>

#include "agent/nccl_receiver.h"
#include "demo/demo_reference.h"
#include "demo/demo_weights.h"

namespace weightsync::demo {
namespace {

Status RunOnCpu(const agent::ReceivePlan& plan) {
  for (const agent::ReceivePlan::Batch& batch : plan.batches) {
    for (const ConvertJob& job : batch.jobs) WS_RETURN_IF_ERROR(ConvertReference(job));
    for (const agent::StridedCopy& c : batch.copies) {
      for (size_t row = 0; row < c.height; ++row) {
        std::memcpy(static_cast<char*>(c.dst) + row * c.dst_pitch,
                    static_cast<const char*>(c.src) + row * c.src_pitch, c.width);
      }
    }
  }
  return Status::Ok();
}

void CheckEveryRank(const std::string& model, const std::string& preset, int tp, bool ep,
                    int replicas) {
  SCOPED_TRACE(model + " tp=" + std::to_string(tp) + (ep ? " ep" : "") +
               " replicas=" + std::to_string(replicas));
  agent::AgentOptions options;
  options.model = model;
  options.dims = *PresetDims(preset);
  options.plan.source_format = "hf";
  options.plan.inference.tp = tp;
  options.plan.inference.expert_parallel = ep;
  options.plan.inference.replicas = replicas;
  auto job = agent::BuildJobPlan(options);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  DemoWeights weights(*job, 11);
  weights.Fill(3);
  auto reference = ReferenceDestinations::Compute(*job, weights.full(), 1);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  for (int rank = 0; rank < job->inference_world(); ++rank) {
    std::map<std::string, std::vector<uint8_t>> memory;
    std::map<std::string, TensorView> views;
    for (const agent::DestinationTensor& d : job->DestinationsOf(rank)) {
      memory[d.name].assign(d.bytes(), 0xA5);  // never written bytes would show
      views[d.name] = TensorView::Contiguous(memory[d.name].data(), d.shape, d.dtype);
    }
    std::vector<uint8_t> scratch;
    auto plan =
        agent::PlanReceive(*job, rank, weights.full(), views, [&](int64_t bytes) -> Result<void*> {
          scratch.assign(bytes, 0);
          return scratch.data();
        });
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_TRUE(RunOnCpu(*plan).ok());
    Status verified = reference->Verify(*job, rank, views);
    EXPECT_TRUE(verified.ok()) << "inference rank " << rank << ": " << verified.ToString();
  }
}

TEST(ReceivePlan, TensorParallelSlicesEqualTheReference) {
  CheckEveryRank("glm_moe_dsa", "glm5_tiny", 2, false, 1);
  CheckEveryRank("glm_moe_dsa", "glm5_tiny", 4, false, 1);
}

TEST(ReceivePlan, ExpertParallelAndReplicasEqualTheReference) {
  CheckEveryRank("glm_moe_dsa", "glm5_tiny", 1, false, 1);
  CheckEveryRank("glm_moe_dsa", "glm5_tiny", 2, true, 2);
  CheckEveryRank("qwen3_moe", "qwen3_moe_tiny", 2, true, 1);
  CheckEveryRank("deepseek_v3", "deepseek_v3_tiny", 4, false, 1);
}

}  // namespace
}  // namespace weightsync::demo
