#include "core/unique_fd.h"

#include <unistd.h>

#include <cerrno>

namespace weightsync {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int UniqueFd::CloseChecked() {
  int fd = std::exchange(fd_, -1);
  if (fd >= 0 && ::close(fd) != 0) return errno;
  return 0;
}

}  // namespace weightsync
