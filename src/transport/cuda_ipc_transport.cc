#include "transport/cuda_ipc_transport.h"

namespace weightsync::transport {

Result<std::unique_ptr<Transport>> CreateCudaIpcTransport(const TransportOptions&) {
  return Unavailable("unavailable: the cuda_ipc backend is not built yet");
}

}  // namespace weightsync::transport
