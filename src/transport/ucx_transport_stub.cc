// Built instead of ucx_transport.cc when the UCX headers were missing at build time.
#include "transport/ucx_transport.h"

namespace weightsync::transport {

Result<std::unique_ptr<Transport>> CreateUcxTransport(const TransportOptions&) {
  return Unavailable("unavailable: built without UCX headers (install libucx-dev and rebuild)");
}

}  // namespace weightsync::transport
