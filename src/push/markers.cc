#include "push/markers.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "control/wait_progress.h"

namespace weightsync::push {
namespace {

// Markers appear once per push; 50 ms keeps the added latency small without busy polling.
constexpr auto kPollInterval = std::chrono::milliseconds(50);

}  // namespace

std::filesystem::path MarkerPath(const std::filesystem::path& dir, uint64_t step,
                                 std::string_view marker) {
  return dir / "broadcasts" / StrCat("step_", step) / std::string(marker);
}

Status WriteMarker(const std::filesystem::path& path, std::string_view contents) {
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) {
    return Unavailable("marker ", path.string(),
                       ": cannot create its directory: ", error.message());
  }
  std::filesystem::path temporary = path;
  temporary += StrCat(".tmp.", ::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    if (!out.good())
      return Unavailable("marker ", path.string(), ": cannot write ", temporary.string());
  }
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::filesystem::remove(temporary, error);
    return Unavailable("marker ", path.string(), ": cannot rename it into place");
  }
  return Status::Ok();
}

Status WaitForMarker(const std::filesystem::path& path, control::Deadline deadline) {
  const auto start = control::Clock::now();
  control::WaitProgress progress(StrCat("marker ", path.string()), deadline);
  while (true) {
    std::error_code error;
    if (std::filesystem::exists(path, error)) return Status::Ok();
    if (progress.Due()) progress.Report("the file does not exist yet");
    if (control::Expired(deadline)) {
      double waited = std::chrono::duration<double>(control::Clock::now() - start).count();
      return DeadlineExceeded("marker ", path.string(), " did not appear within ", waited, " s");
    }
    std::this_thread::sleep_for(
        std::min<control::Clock::duration>(kPollInterval, deadline - control::Clock::now()));
  }
}

}  // namespace weightsync::push
