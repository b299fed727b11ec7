#include "core/parallel_for.h"

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace weightsync {

int ResolveThreadCount(int64_t threads) {
  if (threads > 0) return static_cast<int>(std::min<int64_t>(threads, 1024));
  return std::max(1u, std::thread::hardware_concurrency());
}

Status ParallelFor(int64_t count, int threads,
                   const std::function<Status(int64_t, int64_t)>& body) {
  if (count <= 0) return Status::Ok();
  int64_t workers = std::min<int64_t>(ResolveThreadCount(threads), count);
  if (workers == 1) return body(0, count);

  std::mutex mutex;
  Status first_error;
  auto run = [&](int64_t begin, int64_t end) {
    Status status = body(begin, end);
    if (!status.ok()) {
      std::lock_guard lock(mutex);
      if (first_error.ok()) first_error = std::move(status);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  int64_t chunk = (count + workers - 1) / workers;
  for (int64_t begin = chunk; begin < count; begin += chunk) {
    pool.emplace_back(run, begin, std::min(count, begin + chunk));
  }
  run(0, std::min(count, chunk));  // the calling thread takes the first chunk
  for (auto& t : pool) t.join();
  return first_error;
}

}  // namespace weightsync
