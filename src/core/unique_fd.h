// UniqueFd: an owned POSIX file descriptor, closed on destruction. Shared by every layer that
// holds files or sockets (io, control, transport).
//
// Threading: a UniqueFd is owned by one thread at a time, like any value.
#pragma once

#include <utility>

namespace weightsync {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the descriptor, ignoring errors (use CloseChecked where close() errors matter).
  void Reset();
  // Closes the descriptor and returns close()'s errno (0 on success): on files close() can report
  // a delayed write error.
  int CloseChecked();

 private:
  int fd_ = -1;
};

}  // namespace weightsync
