// demo_pattern_cuda.h in a build without CUDA.
#include "demo/demo_pattern_cuda.h"

namespace weightsync::demo {

Status FillPatternOnDevice(void*, DType, int64_t, int64_t, int64_t, uint64_t, uint64_t) {
  return Unavailable("demo weights on the GPU: built without CUDA");
}

}  // namespace weightsync::demo
