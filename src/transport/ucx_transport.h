// Factory of the `ucx` backend (UCP one-sided puts; libucp loaded at run time). See
// ucx_transport.cc; NIC selection in nic_topology.h.
#pragma once

#include <memory>

#include "transport/transport_base.h"

namespace weightsync::transport {

// kUnavailable ("unavailable: <reason>") when libucp cannot be loaded or initialised.
Result<std::unique_ptr<Transport>> CreateUcxTransport(const TransportOptions& options);

}  // namespace weightsync::transport
