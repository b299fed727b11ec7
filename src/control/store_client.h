// StoreClient: a connection to a StoreServer (control/store_server.h).
//
// Connect() retries until its deadline, so processes may start in any order: a store that comes up
// later is found. Every call takes a deadline and returns an error naming the store address and the
// key. After any transport error the connection is dropped and the next call reconnects (within
// that call's deadline); the reply to a request that was in flight is lost, so callers must treat
// a failed set/add as "may or may not have happened" (add is not idempotent; compare-and-set is
// the tool when that matters).
//
// Threading: internally locked; calls from several threads are serialized on the one connection.
// A Wait() holds the connection until it returns, so a thread that must not queue behind another
// thread's long Wait() (heartbeats, watchers) uses its own StoreClient.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/deadline.h"
#include "control/socket.h"
#include "control/store_protocol.h"
#include "core/config.h"
#include "weightsync/status.h"

namespace weightsync::control {

struct StoreClientOptions {
  std::string address;  // "host:port"
  std::string token;
  uint32_t max_message_size = static_cast<uint32_t>(DefaultBytes("control.max_message_size"));
  // How long a reply may lag behind the deadline the server was given (transit, scheduling)
  // before the client gives up on the connection.
  double reply_grace_s = 1.0;

  // max_message_size from control.max_message_size; address and token are left for the caller.
  static Result<StoreClientOptions> FromConfig(const Config& config);
};

enum class SetMode : uint8_t {
  kPersistent,
  kEphemeral,  // deleted by the server when this client's connection closes (or the process dies)
};

class StoreClient {
 public:
  // Connects and authenticates, retrying refused connections until `deadline`. A wrong token is
  // not retried: kUnauthenticated "authentication failed: ..." at once.
  static Result<std::unique_ptr<StoreClient>> Connect(StoreClientOptions options,
                                                      Deadline deadline);

  Status Set(std::string_view key, std::string_view value, Deadline deadline,
             SetMode mode = SetMode::kPersistent);
  // kNotFound when the key is not set.
  Result<std::string> Get(std::string_view key, Deadline deadline);
  // The value once the key is set; kDeadlineExceeded when it is not set before `deadline`.
  Result<std::string> Wait(std::string_view key, Deadline deadline);
  // Adds `delta` to the decimal int64 at `key` (absent counts as 0) and returns the new value.
  Result<int64_t> Add(std::string_view key, int64_t delta, Deadline deadline);
  // Sets `key` to `desired` if it currently equals `expected` (nullopt: if it is absent).
  Result<CasResult> CompareAndSet(std::string_view key, std::optional<std::string_view> expected,
                                  std::string_view desired, Deadline deadline);
  // True when the key existed.
  Result<bool> Delete(std::string_view key, Deadline deadline);
  // Every key starting with `prefix`, with its value, sorted by key.
  Result<std::vector<KeyValue>> List(std::string_view prefix, Deadline deadline);
  // Deletes every key that starts with `prefix` (non-empty); returns how many there were.
  Result<int64_t> DeletePrefix(std::string_view prefix, Deadline deadline);

  const std::string& address() const { return options_.address; }
  const StoreClientOptions& options() const { return options_; }

 private:
  StoreClient(StoreClientOptions options, HostPort where)
      : options_(std::move(options)), where_(std::move(where)) {}
  Status EnsureConnectedLocked(Deadline deadline);
  // Sends one request and returns the OK body, or the error with the address and key as context.
  Result<std::string> Call(const StoreRequest& request, Deadline deadline);

  const StoreClientOptions options_;
  const HostPort where_;
  std::mutex mu_;
  UniqueFd fd_;  // guarded by mu_; invalid between a transport error and the next call
};

}  // namespace weightsync::control
