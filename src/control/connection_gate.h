// ConnectionGate: a server's front door against peers that connect and then say nothing, or say it
// slowly. One thread accepts connections and reads the first message of each (the store's
// handshake answer, an HTTP request) with non-blocking I/O, so such a connection costs a socket and
// a small buffer, never a thread, until its whole first message has arrived.
//
// Bounds:
//   - the whole first message must arrive within `timeout_s` of the accept, however the peer
//     spaces its bytes;
//   - at most `max_pending` connections may be waiting at once; accepting one more closes the
//     oldest (an honest client sends within a round trip, so the oldest is the one that had the
//     most time and did not use it);
//   - connections with bytes to read are served before new ones are accepted, a few dozen accepts
//     per round, so a connect flood cannot starve clients already accepted.
// Closed connections are logged as counts, at most every few seconds, so a flood does not flood
// the log; malformed first messages one by one, naming the peer.
//
// Threading: RunConnectionGate() on the owner's accept thread until `cancel_fd` becomes readable;
// every GateProtocol call runs on that thread and must not block.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "core/unique_fd.h"
#include "weightsync/status.h"

namespace weightsync::control {

struct ConnectionGateOptions {
  std::string name;  // the subject of log lines: "store 127.0.0.1:PORT"
  double timeout_s = 5;
  int max_pending = 128;
  // The settings behind the two bounds, named in log lines.
  std::string timeout_setting;
  std::string max_pending_setting;
};

class GateProtocol {
 public:
  virtual ~GateProtocol() = default;
  // Bytes to send on a new connection at once (tens of bytes: they must fit an empty socket
  // buffer) and a memo kept with the connection (the store's nonce). An error drops it.
  virtual Result<std::pair<std::string, std::string>> Greet() {
    return std::pair<std::string, std::string>();
  }
  // The first message's size given its first bytes; more than received.size() while the message
  // is incomplete (a guess is fine until it is known). An error closes the connection after
  // Refuse().
  virtual Result<size_t> FirstMessageSize(std::string_view received) = 0;
  // Tells the client why it is dropped (best effort, SendNow); nothing by default.
  virtual void Refuse(int /*fd*/, const Status& /*why*/) {}
  // A complete first message (exactly its size; later bytes are not read): the protocol takes the
  // connection.
  virtual void Take(UniqueFd fd, std::string peer, std::string message, std::string memo) = 0;
};

// Serves `listen_fd` (non-blocking) until `cancel_fd` is readable; closes every connection still
// waiting on return.
void RunConnectionGate(int listen_fd, int cancel_fd, const ConnectionGateOptions& options,
                       GateProtocol& protocol);

// Sends all of `bytes` without blocking, or returns false: for short replies on sockets whose
// send buffer is still empty.
bool SendNow(int fd, std::string_view bytes);

}  // namespace weightsync::control
