// Which network interface this host uses to reach another host: the interface a transport's
// network listeners (UCX's TCP) are kept on, so they never listen on every interface. A job whose
// store is on loopback has every rank on this host, and the answer is the loopback interface.
//
// Threading: free functions; no state.
#pragma once

#include <string>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync::transport {

// The name of the interface ("lo", "eth0") holding the local address the kernel's routing picks
// for reaching `host` (a name or a numeric address). No packet is sent. kUnavailable when the host
// does not resolve or no interface holds that address.
Result<std::string> InterfaceReaching(std::string_view host);

}  // namespace weightsync::transport
