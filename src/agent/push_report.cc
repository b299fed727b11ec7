#include "agent/push_report.h"

#include <chrono>

namespace weightsync::agent {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace weightsync::agent
