// StoreServer: the rendezvous key-value store, a small authenticated TCP service.
//
// Operations (control/store_protocol.h): set (optionally ephemeral: removed when the connection
// that set it closes, which is how liveness notices a killed process at once), get, wait-for-key
// (the server holds the request until the key is set or the client's timeout passes), atomic add
// on an int64 counter, compare-and-set, delete, and list by prefix. Values are bytes.
//
// Connections are authenticated first (control/connection_gate.h): one thread runs the handshake
// of every new connection without blocking, each must finish within control.handshake_timeout, and
// at most control.max_handshakes may be in it at once (the oldest is closed for a newer one), so
// peers without the token can neither exhaust threads nor lock clients out. Each authenticated
// connection then gets its own thread: a slow, silent or malicious client only ever occupies its
// own thread, and a wait is just a condition-variable wait on that thread. At most
// control.max_connections authenticated connections are served at once; more are refused. Once a
// message starts it must finish within control.io_timeout; its buffer grows only as its bytes
// arrive, and all messages still arriving together hold at most control.max_pending_bytes (a
// message that would exceed it closes its connection). A malformed, oversized or truncated
// message closes that one connection.
//
// Threading: Start() and Stop() from the owning thread; port() and address() from any thread.
// Stop() (also run by the destructor) wakes every pending wait with kUnavailable "store server is
// stopping", closes every connection and joins every thread; it returns within about
// control.io_timeout even if a client stopped reading its replies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "weightsync/status.h"

namespace weightsync::control {

struct StoreServerOptions {
  // Loopback unless the caller names another interface on purpose.
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port, reported by StoreServer::port()
  std::string token;  // the shared secret; must not be empty
  // Defaults: the config table's (control.*).
  uint32_t max_message_size = static_cast<uint32_t>(DefaultBytes("control.max_message_size"));
  double handshake_timeout_s = DefaultSeconds("control.handshake_timeout");
  double io_timeout_s = DefaultSeconds("control.io_timeout");
  // Authenticated connections.
  int max_connections = static_cast<int>(DefaultCount("control.max_connections"));
  // Connections still in the handshake.
  int max_handshakes = static_cast<int>(DefaultCount("control.max_handshakes"));
  uint64_t max_pending_bytes = DefaultBytes("control.max_pending_bytes");

  // Sizes, bounds and timeouts from control.max_message_size, control.handshake_timeout,
  // control.io_timeout, control.max_connections, control.max_handshakes and
  // control.max_pending_bytes; host, port and token are left for the caller.
  static Result<StoreServerOptions> FromConfig(const Config& config);
};

class StoreServer {
 public:
  static Result<std::unique_ptr<StoreServer>> Start(StoreServerOptions options);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  uint16_t port() const;
  // "127.0.0.1:PORT": what clients pass as their address.
  std::string address() const;
  // Authenticated connections being served now.
  int connection_count() const;
  // Bytes held now for messages still arriving (at most max_pending_bytes).
  uint64_t pending_bytes() const;

  void Stop();

 private:
  class Impl;
  explicit StoreServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightsync::control
