// The CUDA conversion API in a build without nvcc: every call reports kUnavailable, so callers
// compile the same way everywhere and choose the CPU path at run time.
#include "convert/cuda/convert_cuda.h"

namespace weightsync {
namespace {
Status BuiltWithoutCuda() {
  return Unavailable("CUDA conversion: built without CUDA (nvcc was not found at configure time)");
}
}  // namespace

struct CudaConverter::State {};

CudaConverter::CudaConverter() : state_(std::make_unique<State>()) {}
CudaConverter::~CudaConverter() = default;

Status CudaConversionAvailable() { return BuiltWithoutCuda(); }
Status CudaConverter::Enqueue(std::span<const ConvertJob>, CudaStream) {
  return BuiltWithoutCuda();
}
Status CudaConverter::Finish() { return BuiltWithoutCuda(); }
Status ConvertOnDevice(std::span<const ConvertJob>, CudaStream) { return BuiltWithoutCuda(); }

}  // namespace weightsync
