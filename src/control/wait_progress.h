// Progress lines for long waits. A job waiting for ranks or for a key would otherwise print nothing
// until its deadline (minutes, up to an hour), and an operator cannot tell a slow peer from a typo
// in a job name. A waiter asks Due() between its own short waits and, when a line is due, says what
// is still missing; lines come at a steady interval, the first one interval after the wait began.
#pragma once

#include <string>
#include <string_view>

#include "control/deadline.h"
#include "control/store_client.h"
#include "weightsync/status.h"

namespace weightsync::control {

// How often a long wait says what it waits for.
inline constexpr Clock::duration kWaitProgressInterval = std::chrono::seconds(10);

class WaitProgress {
 public:
  // `what` names the wait ("job j: barrier 'push-commit' generation 3 (trainer 0)").
  WaitProgress(std::string what, Deadline deadline,
               Clock::duration interval = kWaitProgressInterval);

  // True once per interval; the caller then builds its details and calls Report.
  bool Due();
  // Logs "<what>: still waiting after X s (deadline in Y s): <details>" at info level.
  void Report(std::string_view details) const;

 private:
  std::string what_;
  Deadline start_;
  Deadline deadline_;
  Clock::duration interval_;
  Deadline next_;
};

// client.Wait(key, deadline) that logs `what` and the key at every interval while it waits.
Result<std::string> WaitWithProgress(StoreClient& client, std::string_view key, Deadline deadline,
                                     std::string_view what,
                                     Clock::duration interval = kWaitProgressInterval);

}  // namespace weightsync::control
