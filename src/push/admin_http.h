// The HTTP admin endpoint of an inference agent, for operators and external orchestrators
// (vLLM-style surfaces):
//   GET  /status             200, JSON: state, step, committed/torn step, phase, last push timings
//                            per phase, last error (InferenceSnapshot::ToJson)
//   GET  /is_paused          200, {"is_paused": true|false}
//   POST /pause              200 once the engine is paused and held paused across pushes
//   POST /resume[?force=1]   200 once it serves again; 409 while a push is in progress or when
//                            the weights are torn and force is not given
// Every request must carry `Authorization: Bearer <admin token>` (compared in constant time);
// otherwise 401 and a warning naming the peer. Errors are {"error": "..."}. Binds to loopback
// unless told otherwise. One request per connection ("Connection: close").
//
// Peers without the token cannot lock operators out: one thread (control/connection_gate.h) reads
// every request with non-blocking I/O until it has arrived whole, which must happen within
// admin.io_timeout of the connect however slowly its bytes come; at most 128 connections may be
// arriving at once (one more closes the oldest); only whole requests reach the handler threads,
// where cpp-httplib (Debian libcpp-httplib-dev) parses and routes them. Heads are capped at 16 KiB,
// bodies at 64 KiB and need Content-Length (push/http_request_frame.h); replies are written within
// admin.io_timeout.
//
// Threading: Start/Stop from the owning thread; requests are served on 4 worker threads, so the
// handlers must be thread-safe (InferencePush's Pause/Resume/Snapshot are).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "push/inference_push.h"
#include "weightsync/status.h"

namespace weightsync::push {

struct AdminHandlers {
  std::function<std::string()> status_json;
  std::function<bool()> is_paused;
  std::function<Status()> pause;
  std::function<Status(bool force)> resume;
};

// Handlers that drive `agent`, which must outlive the server.
AdminHandlers AdminHandlersFor(InferencePush& agent);

struct AdminOptions {
  std::string listen = DefaultString("admin.listen");  // port 0: any free port (port())
  std::string token;                                   // required
  double io_timeout_s = DefaultSeconds("admin.io_timeout");
  // admin.listen and admin.io_timeout; the token is left for the caller.
  static Result<AdminOptions> FromConfig(const Config& config);
};

class AdminServer {
 public:
  static Result<std::unique_ptr<AdminServer>> Start(AdminOptions options, AdminHandlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const;
  std::string address() const;  // "127.0.0.1:PORT"
  // Stops accepting, finishes requests in flight, joins the threads; idempotent.
  void Stop();

 private:
  class Impl;
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightsync::push
