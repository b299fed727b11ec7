// Thin POSIX TCP helpers for the control plane: an owning fd, host:port parsing, listen, connect
// and exact reads/writes, each bounded by a Deadline (poll() before every blocking call).
//
// Threading: free functions with no shared state; a UniqueFd is owned by one thread at a time.
// Sockets are created close-on-exec (child processes must not keep store connections alive) and
// writes use MSG_NOSIGNAL (a peer that went away is an error, not a SIGPIPE).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "control/deadline.h"
#include "core/unique_fd.h"
#include "weightsync/status.h"

namespace weightsync::control {

struct HostPort {
  std::string host;  // a name or a numeric IPv4/IPv6 address, without brackets
  uint16_t port = 0;
  // "127.0.0.1:5000", "[::1]:5000".
  std::string ToString() const;
};

// Parses "host:port" or "[v6addr]:port"; the port must be 0-65535.
Result<HostPort> ParseHostPort(std::string_view text);

// A listening socket bound to `where` (port 0 picks an ephemeral port).
Result<UniqueFd> Listen(const HostPort& where, int backlog);
// The port a bound socket got.
Result<uint16_t> LocalPort(int fd);
// "1.2.3.4:5678" for a connected socket, "unknown peer" when it cannot be read.
std::string PeerAddress(int fd);

// One connection attempt to every address `where` resolves to, in order; kUnavailable when none
// accepts (refused, unreachable) so callers know a retry may succeed.
Result<UniqueFd> ConnectOnce(const HostPort& where, Deadline deadline);

// Writes every byte or fails: kDeadlineExceeded, or kUnavailable when the peer went away.
Status WriteAll(int fd, std::string_view bytes, Deadline deadline);

// Waits until `fd` is readable (data or EOF). kAborted when `cancel_fd` (if >= 0) becomes readable
// first: the owner's way to interrupt a wait without closing a socket another thread may use.
Status WaitReadable(int fd, Deadline deadline, int cancel_fd = -1);

// Reads exactly `size` bytes. EOF before the first byte is kUnavailable ("connection closed");
// EOF after some bytes is kDataLoss (a truncated message).
Status ReadExact(int fd, char* data, size_t size, Deadline deadline, int cancel_fd = -1);

}  // namespace weightsync::control
