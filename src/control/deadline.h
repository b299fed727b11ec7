// Deadlines for the control plane: every wait, read, write and connect takes one, so no call can
// hang. A deadline is an absolute point on the monotonic clock, which makes it cheap to pass the
// same deadline down through several calls (connect, handshake, request, reply) without each one
// restarting its own timer.
#pragma once

#include <algorithm>
#include <chrono>

namespace weightsync::control {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// A deadline `seconds` from now. Negative or NaN counts as zero; very large values saturate to a
// point far in the future instead of overflowing.
inline Deadline DeadlineIn(double seconds) {
  if (!(seconds > 0)) return Clock::now();
  constexpr double kFarFuture = 100.0 * 365 * 24 * 3600;  // a century: "no deadline" in practice
  auto delta = std::chrono::duration<double>(std::min(seconds, kFarFuture));
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(delta);
}

// Seconds left until the deadline, never negative.
inline double SecondsUntil(Deadline deadline) {
  return std::max(0.0, std::chrono::duration<double>(deadline - Clock::now()).count());
}

// Milliseconds left, rounded up so a 0.4 ms remainder still waits instead of spinning, capped to
// what poll() accepts.
inline int PollTimeoutMs(Deadline deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 1 << 30));
}

inline bool Expired(Deadline deadline) { return Clock::now() >= deadline; }

}  // namespace weightsync::control
