#include "transport/socket_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weightsync::transport {
namespace {
constexpr uint32_t kMaxMessage = 64u << 20;  // descriptors and commands are small
}

SocketChannel::~SocketChannel() {
  if (fd_ >= 0) close(fd_);
}

SocketChannel& SocketChannel::operator=(SocketChannel&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Status SocketChannel::Send(const std::vector<uint8_t>& message) {
  const auto size = static_cast<uint32_t>(message.size());
  std::vector<uint8_t> frame(reinterpret_cast<const uint8_t*>(&size),
                            reinterpret_cast<const uint8_t*>(&size) + 4);
  frame.insert(frame.end(), message.begin(), message.end());
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Aborted("channel send: ", std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status SocketChannel::SendText(const std::string& text) {
  return Send(std::vector<uint8_t>(text.begin(), text.end()));
}

Status SocketChannel::ReadFull(uint8_t* out, size_t size, Deadline deadline) {
  size_t got = 0;
  while (got < size) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return DeadlineExceeded("channel receive: deadline passed");
    pollfd p{fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) return Aborted("channel poll: ", std::strerror(errno));
    if (r <= 0) continue;
    const ssize_t n = ::recv(fd_, out + got, size - got, 0);
    if (n == 0) return Aborted("channel receive: the other process closed the channel");
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Aborted("channel receive: ", std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> SocketChannel::Receive(Deadline deadline) {
  uint32_t size = 0;
  WS_RETURN_IF_ERROR(ReadFull(reinterpret_cast<uint8_t*>(&size), 4, deadline));
  if (size > kMaxMessage) return DataLoss("channel message of ", size, " bytes is too large");
  std::vector<uint8_t> message(size);
  WS_RETURN_IF_ERROR(ReadFull(message.data(), size, deadline));
  return message;
}

Result<std::string> SocketChannel::ReceiveText(Deadline deadline) {
  WS_ASSIGN_OR_RETURN(auto bytes, Receive(deadline));
  return std::string(bytes.begin(), bytes.end());
}

bool SocketChannel::Readable(int wait_ms) const {
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, wait_ms) > 0;
}

Result<std::pair<SocketChannel, SocketChannel>> MakeChannelPair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Unavailable("socketpair: ", std::strerror(errno));
  }
  return std::make_pair(SocketChannel(fds[0]), SocketChannel(fds[1]));
}

}  // namespace weightsync::transport
