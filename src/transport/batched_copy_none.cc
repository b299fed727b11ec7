// Built instead of the embedded kernel when nvcc was not found: cuda_ipc copies each small write
// with its own cuMemcpyAsync.
#include "transport/batched_copy.h"

namespace weightsync::transport {

std::span<const unsigned char> BatchedCopyImage() { return {}; }

}  // namespace weightsync::transport
