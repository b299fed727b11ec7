// Factory of the `cuda_ipc` backend (same-host GPU -> GPU over NVLink; libcuda loaded at run
// time). See cuda_ipc_transport.cc.
#pragma once

#include <memory>

#include "transport/transport_base.h"

namespace weightsync::transport {

// kUnavailable ("unavailable: <reason>") without libcuda.so.1 or without a GPU.
Result<std::unique_ptr<Transport>> CreateCudaIpcTransport(const TransportOptions& options);

}  // namespace weightsync::transport
