#include "transport/fd_passing.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace weightsync::transport {
namespace {

// The one-byte answer before the descriptor.
constexpr char kUnknownKey = 0, kSent = 1, kOpenFailed = 2;

socklen_t AbstractAddress(const std::string& name, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr.sun_path) - 2);
  std::memcpy(addr.sun_path + 1, name.data(), n);  // sun_path[0] == 0: abstract namespace
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

}  // namespace

FdServer::FdServer(std::string name, int listen_fd)
    : name_(std::move(name)), listen_fd_(listen_fd), thread_([this] { Serve(); }) {}

Result<std::unique_ptr<FdServer>> FdServer::Start(std::string name) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable("fd server socket: ", std::strerror(errno));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(name, addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 64) != 0) {
    const int err = errno;
    close(fd);
    return Unavailable("fd server '", name, "': ", std::strerror(err));
  }
  return std::unique_ptr<FdServer>(new FdServer(std::move(name), fd));
}

FdServer::~FdServer() {
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  thread_.join();
  close(listen_fd_);
}

void FdServer::Publish(uint64_t key, Opener open) {
  std::lock_guard lock(mutex_);
  openers_[key] = std::move(open);
}

void FdServer::Withdraw(uint64_t key) {
  std::lock_guard lock(mutex_);
  openers_.erase(key);
}

void FdServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    ucred cred{};
    socklen_t cred_len = sizeof(cred);
    uint64_t key = 0;
    // Only processes of our own user may map our GPU memory.
    const bool allowed =
        getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0 && cred.uid == getuid();
    pollfd q{conn, POLLIN, 0};
    if (allowed && poll(&q, 1, 1000) > 0 && recv(conn, &key, sizeof(key), MSG_WAITALL) == 8) {
      int fd = -1;
      char ok = kUnknownKey;
      {
        std::lock_guard lock(mutex_);
        if (auto it = openers_.find(key); it != openers_.end()) {
          Result<int> opened = it->second();
          if (opened.ok()) {
            fd = *opened;
            ok = kSent;
          } else {
            ok = kOpenFailed;
            Log(LogLevel::kWarning, "fd server '", name_, "': handle ", key, ": ",
                opened.status().message());
          }
        }
      }
      iovec iov{&ok, 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
      }
      (void)sendmsg(conn, &msg, MSG_NOSIGNAL);
      if (fd >= 0) close(fd);
    }
    close(conn);
  }
}

Result<int> FetchFd(const std::string& name, uint64_t key, Deadline deadline) {
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Unavailable("socket: ", std::strerror(errno));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(name, addr);
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    close(s);
    return Unavailable("connect to fd server '", name, "': ", std::strerror(err));
  }
  Status status;
  int fd = -1;
  if (send(s, &key, sizeof(key), MSG_NOSIGNAL) != 8) {
    status = Unavailable("fd server '", name, "': send failed");
  } else {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count()))) <= 0) {
      status = DeadlineExceeded("fd server '", name, "': no answer before the deadline");
    } else {
      char ok = 0;
      iovec iov{&ok, 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      const ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
      cmsghdr* c = n == 1 && ok == kSent ? CMSG_FIRSTHDR(&msg) : nullptr;
      if (c != nullptr && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
      } else if (n == 1 && ok == kOpenFailed) {
        status = Unavailable("fd server '", name, "' could not open handle ", key,
                             " (its process logged why)");
      } else {
        status = NotFound("fd server '", name, "' has no handle ", key,
                          " (region deregistered, or another user)");
      }
    }
  }
  close(s);
  if (!status.ok()) return status;
  return fd;
}

}  // namespace weightsync::transport
