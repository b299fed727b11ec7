// StoreServer: the rendezvous key-value store, a small authenticated TCP service.
//
// Operations (control/store_protocol.h): set (optionally ephemeral: removed when the connection
// that set it closes, which is how liveness notices a killed process at once), get, wait-for-key
// (the server holds the request until the key is set or the client's timeout passes), atomic add
// on an int64 counter, compare-and-set, delete, and list by prefix. Values are bytes.
//
// One thread per connection: a slow, silent or malicious client only ever occupies its own thread,
// and a wait is just a condition-variable wait on that thread. Every read after the handshake has
// a deadline once a message has started (control.io_timeout); the handshake itself must finish
// within control.connect_timeout. A malformed, oversized or truncated message closes that one
// connection. At most `max_connections` connections are served at once; more are refused.
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
  uint32_t max_message_size = 64u << 20;
  double handshake_timeout_s = 10;
  double io_timeout_s = 10;
  int max_connections = 1024;

  // Sizes and timeouts from control.max_message_size, control.connect_timeout, control.io_timeout
  // and control.max_connections; host, port and token are left for the caller.
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
  // Connections being served now (authenticated or still in the handshake).
  int connection_count() const;

  void Stop();

 private:
  class Impl;
  explicit StoreServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightsync::control
