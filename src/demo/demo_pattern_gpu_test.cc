// The demo's weights generated on a GPU are bit-identical to the host generator's (the GPU demo
// dumps host-generated sources and verifies against GPU-generated ones).
#include <gtest/gtest.h>

#include <cstring>

#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"
#include "demo/demo_weights.h"
#include "plan/model_dims.h"

namespace weightsync::demo {
namespace {

TEST(DemoPatternGpu, DeviceWeightsEqualHostWeights) {
  if (!CudaConversionAvailable().ok()) GTEST_SKIP() << "skipped: no CUDA device";
  agent::AgentOptions options;
  options.model = "glm_moe_dsa";
  options.dims = *PresetDims("glm5_tiny");
  options.plan.source_format = "torchtitan";  // 3D expert stacks: shards start mid-tensor
  options.plan.trainer.fsdp = 3;
  auto job = agent::BuildJobPlan(options);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  DemoWeights host(*job, 11);
  host.Fill(4);
  for (int rank : {-1, 2}) {
    auto device = DeviceDemoWeights::Create(*job, 11, 0, rank);
    ASSERT_TRUE(device.ok()) << device.status().ToString();
    ASSERT_TRUE((*device)->Fill(4).ok());
    auto expected = rank < 0 ? host.full() : *host.ShardViews(rank);
    for (const auto& [name, view] : (*device)->views()) {
      const TensorView& want = expected.at(name);
      ASSERT_EQ(view.nbytes(), want.nbytes()) << name;
      std::vector<uint8_t> got(view.nbytes());
      ASSERT_TRUE(CopyDeviceToHost(got.data(), view.data, got.size()).ok());
      EXPECT_EQ(std::memcmp(got.data(), want.data, got.size()), 0) << name << " rank " << rank;
    }
  }
}

}  // namespace
}  // namespace weightsync::demo
