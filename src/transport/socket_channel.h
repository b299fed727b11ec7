// A length-prefixed message channel over one end of a socketpair, with deadlines. It carries
// addresses, descriptors and commands between the processes of the multi-process tests and of
// `weightsync bench transport`; the real control plane is src/control, which this layer does not
// depend on.
//
// Threading: one thread per channel. The channel owns its file descriptor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace weightsync::transport {

class SocketChannel {
 public:
  explicit SocketChannel(int fd = -1) : fd_(fd) {}
  ~SocketChannel();
  SocketChannel(SocketChannel&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  SocketChannel& operator=(SocketChannel&& other) noexcept;

  int fd() const { return fd_; }
  // Detaches the descriptor (for exec'ing a child that inherits it).
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  Status Send(const std::vector<uint8_t>& message);
  Status SendText(const std::string& text);
  // kDeadlineExceeded past the deadline, kAborted when the other end closed.
  Result<std::vector<uint8_t>> Receive(Deadline deadline);
  Result<std::string> ReceiveText(Deadline deadline);
  // Whether a message (or EOF) is ready now, or within `wait_ms` milliseconds.
  bool Readable(int wait_ms = 0) const;

 private:
  Status ReadFull(uint8_t* out, size_t size, Deadline deadline);
  int fd_ = -1;
};

// A connected pair of stream sockets (AF_UNIX, close-on-exec on both).
Result<std::pair<SocketChannel, SocketChannel>> MakeChannelPair();

}  // namespace weightsync::transport
