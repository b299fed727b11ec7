#include "control/wait_progress.h"

#include <algorithm>

#include "core/log.h"

namespace weightsync::control {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

WaitProgress::WaitProgress(std::string what, Deadline deadline, Clock::duration interval)
    : what_(std::move(what)),
      start_(Clock::now()),
      deadline_(deadline),
      interval_(interval),
      next_(start_ + interval) {}

bool WaitProgress::Due() {
  const Deadline now = Clock::now();
  if (now < next_) return false;
  next_ = now + interval_;
  return true;
}

void WaitProgress::Report(std::string_view details) const {
  Log(LogLevel::kInfo, what_, ": still waiting after ",
      static_cast<int64_t>(Seconds(Clock::now() - start_)), " s (deadline in ",
      static_cast<int64_t>(SecondsUntil(deadline_)), " s): ", details);
}

Result<std::string> WaitWithProgress(StoreClient& client, std::string_view key, Deadline deadline,
                                     std::string_view what, Clock::duration interval) {
  WaitProgress progress{std::string(what), deadline, interval};
  while (true) {
    auto value = client.Wait(key, std::min(deadline, Clock::now() + interval));
    if (value.ok() || value.status().code() != StatusCode::kDeadlineExceeded || Expired(deadline)) {
      return value;
    }
    if (progress.Due()) progress.Report(StrCat("key '", key, "' is not set yet"));
  }
}

}  // namespace weightsync::control
