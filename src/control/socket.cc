#include "control/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace weightsync::control {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> Resolve(const HostPort& where, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* result = nullptr;
  std::string port = std::to_string(where.port);
  int rc = getaddrinfo(where.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    return Unavailable("cannot resolve ", where.ToString(), ": ", gai_strerror(rc));
  }
  return AddrInfoPtr(result);
}

std::string SockaddrText(const sockaddr* addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
    return StrCat(host, ":", port);
  }
  if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    return StrCat("[", host, "]:", port);
  }
  return "unknown peer";
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("address '", text, "' is not [host]:port");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgument("address '", text, "' is not host:port");
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5) {
    return InvalidArgument("address '", text, "' has no valid port");
  }
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return InvalidArgument("address '", text, "' has no valid port");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) return InvalidArgument("address '", text, "': port ", port, " is over 65535");
  out.port = static_cast<uint16_t>(port);
  return out;
}

Result<UniqueFd> Listen(const HostPort& where, int backlog) {
  WS_ASSIGN_OR_RETURN(AddrInfoPtr addrs, Resolve(where, /*passive=*/true));
  std::string last_error = "no address";
  for (addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last_error = ErrnoText(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), backlog) != 0) {
      last_error = ErrnoText(errno);
      continue;
    }
    return fd;
  }
  return Unavailable("cannot listen on ", where.ToString(), ": ", last_error);
}

Result<uint16_t> LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Internal("getsockname: ", ErrnoText(errno));
  }
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return Internal("socket has no IP address");
}

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
  return SockaddrText(reinterpret_cast<sockaddr*>(&addr));
}

Result<UniqueFd> ConnectOnce(const HostPort& where, Deadline deadline) {
  WS_ASSIGN_OR_RETURN(AddrInfoPtr addrs, Resolve(where, /*passive=*/false));
  std::string last_error = "no address";
  for (addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd.valid()) {
      last_error = ErrnoText(errno);
      continue;
    }
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      last_error = ErrnoText(errno);
      continue;
    }
    if (rc != 0) {
      pollfd pfd{fd.get(), POLLOUT, 0};
      int ready = ::poll(&pfd, 1, PollTimeoutMs(deadline));
      if (ready == 0) return DeadlineExceeded("connect to ", where.ToString(), " timed out");
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (ready < 0 || err != 0) {
        last_error = ErrnoText(ready < 0 ? errno : err);
        continue;
      }
    }
    // Back to blocking mode: every later read and write polls first, so it never blocks long.
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
  }
  return Unavailable("cannot connect to ", where.ToString(), ": ", last_error);
}

Status WriteAll(int fd, std::string_view bytes, Deadline deadline) {
  size_t done = 0;
  while (done < bytes.size()) {
    pollfd pfd{fd, POLLOUT, 0};
    int ready = ::poll(&pfd, 1, PollTimeoutMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Unavailable("poll: ", ErrnoText(errno));
    if (ready == 0) {
      return DeadlineExceeded("write timed out after ", done, " of ", bytes.size(), " bytes");
    }
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Unavailable("connection lost while writing: ", ErrnoText(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WaitReadable(int fd, Deadline deadline, int cancel_fd) {
  while (true) {
    pollfd pfds[2] = {{fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int ready = ::poll(pfds, cancel_fd >= 0 ? 2 : 1, PollTimeoutMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Unavailable("poll: ", ErrnoText(errno));
    if (cancel_fd >= 0 && (pfds[1].revents & POLLIN)) return Aborted("cancelled");
    if (pfds[0].revents != 0) return Status::Ok();  // data, EOF or error: the read will tell
    if (ready == 0 || Expired(deadline)) return DeadlineExceeded("read timed out");
  }
}

Status ReadExact(int fd, char* data, size_t size, Deadline deadline, int cancel_fd) {
  size_t done = 0;
  while (done < size) {
    WS_RETURN_IF_ERROR(WaitReadable(fd, deadline, cancel_fd)
                           .WithContext(StrCat("after ", done, " of ", size, " bytes")));
    ssize_t n = ::recv(fd, data + done, size - done, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Unavailable("connection lost while reading: ", ErrnoText(errno));
    }
    if (n == 0) {
      if (done == 0) return Unavailable("connection closed by peer");
      return DataLoss("truncated message: connection closed after ", done, " of ", size, " bytes");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace weightsync::control
