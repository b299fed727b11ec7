// convert_gpu_test in a build without nvcc: the API exists and says why it cannot convert.
#include <gtest/gtest.h>

#include "convert/cuda/convert_cuda.h"

namespace weightsync {
namespace {

TEST(ConvertGpuTest, BuiltWithoutCudaReportsUnavailable) {
  ConvertJob job;
  EXPECT_EQ(CudaConversionAvailable().code(), StatusCode::kUnavailable);
  const Status status = ConvertOnDevice({&job, 1}, nullptr);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("built without CUDA"), std::string::npos) << status.message();
  std::printf("skipped: no CUDA device (built without CUDA)\n");
}

}  // namespace
}  // namespace weightsync
