#include "control/connection_gate.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <thread>
#include <vector>

#include "control/deadline.h"
#include "control/socket.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

constexpr int kAcceptsPerRound = 32;
constexpr auto kSummaryInterval = std::chrono::seconds(5);
constexpr size_t kReadPiece = 16 << 10;

struct Waiting {
  UniqueFd fd;
  std::string peer;
  std::string memo;
  std::string received;
  Deadline deadline;
};

class Gate {
 public:
  Gate(int listen_fd, int cancel_fd, const ConnectionGateOptions& options, GateProtocol& protocol)
      : listen_fd_(listen_fd), cancel_fd_(cancel_fd), options_(options), protocol_(protocol) {}
  ~Gate() { LogDropped(/*now=*/true); }

  void Run();

 private:
  void AcceptNew();
  void Accept(UniqueFd fd);
  // True when the connection is finished with (taken by the protocol or closed).
  bool OnReadable(Waiting& waiting);
  void ExpireOld();
  void LogDropped(bool now);

  const int listen_fd_;
  const int cancel_fd_;
  const ConnectionGateOptions& options_;
  GateProtocol& protocol_;
  std::list<Waiting> waiting_;  // in accept order: the oldest (and first to expire) first
  int timed_out_ = 0;
  int evicted_ = 0;
  Clock::time_point last_summary_ = Clock::now();
};

void Gate::Run() {
  std::vector<pollfd> fds;
  std::vector<std::list<Waiting>::iterator> order;
  while (true) {
    fds.assign({{cancel_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}});
    order.clear();
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      fds.push_back({it->fd.get(), POLLIN, 0});
      order.push_back(it);
    }
    Deadline wake = waiting_.empty() ? DeadlineIn(60) : waiting_.front().deadline;
    if (::poll(fds.data(), fds.size(), PollTimeoutMs(wake)) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, options_.name,
          ": poll failed, no longer accepting: ", std::strerror(errno));
      return;
    }
    if (fds[0].revents & POLLIN) return;
    for (size_t i = 0; i < order.size(); ++i) {
      if (fds[i + 2].revents != 0 && OnReadable(*order[i])) waiting_.erase(order[i]);
    }
    ExpireOld();
    if (fds[1].revents & POLLIN) AcceptNew();
    LogDropped(/*now=*/false);
  }
}

void Gate::AcceptNew() {
  for (int i = 0; i < kAcceptsPerRound; ++i) {
    UniqueFd fd(::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.valid()) {
      Accept(std::move(fd));
      continue;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
      Log(LogLevel::kWarning, options_.name, ": accept: ", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (errno != EINTR && errno != ECONNABORTED) return;  // EAGAIN: no more waiting
  }
}

void Gate::Accept(UniqueFd fd) {
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (static_cast<int>(waiting_.size()) >= options_.max_pending) {
    waiting_.pop_front();
    ++evicted_;
  }
  auto greeting = protocol_.Greet();
  if (!greeting.ok()) {
    Log(LogLevel::kError, options_.name, ": ", greeting.status().ToString());
    return;
  }
  if (!greeting->first.empty() && !SendNow(fd.get(), greeting->first)) return;
  Waiting waiting;
  waiting.peer = PeerAddress(fd.get());
  waiting.memo = std::move(greeting->second);
  waiting.deadline = DeadlineIn(options_.timeout_s);
  waiting.fd = std::move(fd);
  waiting_.push_back(std::move(waiting));
}

bool Gate::OnReadable(Waiting& waiting) {
  char buffer[kReadPiece];
  while (true) {
    Result<size_t> size = protocol_.FirstMessageSize(waiting.received);
    if (!size.ok()) {
      Log(LogLevel::kWarning, options_.name, ": closing the connection from ", waiting.peer, ": ",
          size.status().ToString());
      protocol_.Refuse(waiting.fd.get(), size.status());
      return true;
    }
    if (waiting.received.size() >= *size) {
      waiting.received.resize(*size);
      protocol_.Take(std::move(waiting.fd), std::move(waiting.peer), std::move(waiting.received),
                     std::move(waiting.memo));
      return true;
    }
    const size_t want = std::min(kReadPiece, *size - waiting.received.size());
    ssize_t n = ::recv(waiting.fd.get(), buffer, want, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    if (n <= 0) return true;  // the client hung up (or reset): nothing to answer
    waiting.received.append(buffer, static_cast<size_t>(n));
  }
}

void Gate::ExpireOld() {
  while (!waiting_.empty() && Expired(waiting_.front().deadline)) {
    waiting_.pop_front();
    ++timed_out_;
  }
}

void Gate::LogDropped(bool now) {
  if (timed_out_ + evicted_ == 0) return;
  if (!now && Clock::now() - last_summary_ < kSummaryInterval) return;
  Log(LogLevel::kWarning, options_.name, ": closed ", timed_out_ + evicted_,
      " connections before their first message: ", timed_out_, " did not send it within ",
      options_.timeout_s, " s (", options_.timeout_setting, "), ", evicted_,
      " made room for newer ones (at most ", options_.max_pending, " wait at once, ",
      options_.max_pending_setting, ")");
  timed_out_ = 0;
  evicted_ = 0;
  last_summary_ = Clock::now();
}

}  // namespace

void RunConnectionGate(int listen_fd, int cancel_fd, const ConnectionGateOptions& options,
                       GateProtocol& protocol) {
  Gate(listen_fd, cancel_fd, options, protocol).Run();
}

bool SendNow(int fd, std::string_view bytes) {
  ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(bytes.size());
}

}  // namespace weightsync::control
