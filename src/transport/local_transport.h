// Factory of the `local` backend (memcpy within one process). See local_transport.cc.
#pragma once

#include <memory>

#include "transport/transport_base.h"

namespace weightsync::transport {

std::unique_ptr<Transport> CreateLocalTransport(const TransportOptions& options);

}  // namespace weightsync::transport
