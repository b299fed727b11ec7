#include "control/store_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "control/auth.h"
#include "control/socket.h"
#include "control/store_protocol.h"
#include "control/wire.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

// While a wait is pending the server checks this often whether its client went away, so a killed
// waiter does not pin a thread (and its ephemeral keys) until its timeout.
constexpr auto kWaitCheckInterval = std::chrono::milliseconds(100);

std::optional<int64_t> ParseInt64(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// True when the client closed its end or sent bytes while it should be waiting for a reply.
bool ClientGone(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

StoreResponse Reply(Status status) { return StoreResponse{status.code(), status.message(), ""}; }
StoreResponse Reply(std::string body) {
  return StoreResponse{StatusCode::kOk, "", std::move(body)};
}

}  // namespace

class StoreServer::Impl {
 public:
  explicit Impl(StoreServerOptions options) : options_(std::move(options)) {}
  ~Impl() {
    for (int fd : wake_pipe_) {
      if (fd >= 0) ::close(fd);
    }
  }

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }
  std::string address() const { return HostPort{options_.host, port_}.ToString(); }
  int connection_count() const {
    std::lock_guard lock(conns_mu_);
    int live = 0;
    for (const auto& conn : conns_) live += conn->finished.load() ? 0 : 1;
    return live;
  }

 private:
  struct Entry {
    std::string value;
    uint64_t owner = 0;  // the connection whose close deletes this key; 0: nobody (persistent)
  };
  struct Connection {
    uint64_t id = 0;
    UniqueFd fd;
    std::string peer;
    std::thread thread;
    std::atomic<bool> finished{false};
    std::set<std::string> owned;  // ephemeral keys it set; guarded by Impl::mu_
  };

  void AcceptLoop();
  void Serve(Connection& conn);
  // nullopt: the client went away during a wait; close without replying.
  std::optional<StoreResponse> Execute(Connection& conn, const StoreRequest& request);
  std::optional<StoreResponse> WaitForKey(Connection& conn, const StoreRequest& request);
  StoreResponse Add(const StoreRequest& request);
  StoreResponse CompareAndSet(const StoreRequest& request);
  StoreResponse List(const StoreRequest& request);
  void ReapFinished();
  int cancel_fd() const { return wake_pipe_[0]; }

  const StoreServerOptions options_;
  UniqueFd listen_fd_;
  uint16_t port_ = 0;
  int wake_pipe_[2] = {-1, -1};  // written once by Stop(); every poll also watches the read end
  std::thread accept_thread_;

  std::mutex mu_;  // guards data_, stopping_ and Connection::owned
  std::condition_variable changed_;
  std::map<std::string, Entry, std::less<>> data_;
  bool stopping_ = false;

  mutable std::mutex conns_mu_;
  std::list<std::unique_ptr<Connection>> conns_;
  uint64_t next_connection_id_ = 1;
  bool stopped_ = false;
};

Result<StoreServerOptions> StoreServerOptions::FromConfig(const Config& config) {
  StoreServerOptions options;
  WS_ASSIGN_OR_RETURN(uint64_t max_message, config.GetBytes("control.max_message_size"));
  if (max_message < 4096 || max_message > UINT32_MAX) {
    return InvalidArgument("control.max_message_size must be between 4KiB and 4GiB");
  }
  options.max_message_size = static_cast<uint32_t>(max_message);
  WS_ASSIGN_OR_RETURN(options.handshake_timeout_s, config.GetSeconds("control.connect_timeout"));
  WS_ASSIGN_OR_RETURN(options.io_timeout_s, config.GetSeconds("control.io_timeout"));
  WS_ASSIGN_OR_RETURN(int64_t max_connections, config.GetCount("control.max_connections"));
  if (max_connections < 1) return InvalidArgument("control.max_connections must be at least 1");
  options.max_connections = static_cast<int>(std::min<int64_t>(max_connections, 1 << 20));
  return options;
}

Status StoreServer::Impl::Start() {
  if (options_.token.empty()) return InvalidArgument("the store needs a non-empty token");
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) return Internal("pipe2 failed");
  WS_ASSIGN_OR_RETURN(listen_fd_, Listen(HostPort{options_.host, options_.port}, 512));
  // Non-blocking, so an accept after a poll wake-up whose connection was already reset returns at
  // once instead of blocking the accept thread (and Stop()).
  ::fcntl(listen_fd_.get(), F_SETFL, ::fcntl(listen_fd_.get(), F_GETFL) | O_NONBLOCK);
  WS_ASSIGN_OR_RETURN(port_, LocalPort(listen_fd_.get()));
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void StoreServer::Impl::Stop() {
  {
    std::lock_guard lock(conns_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (wake_pipe_[1] >= 0) {
    char byte = 1;
    (void)!::write(wake_pipe_[1], &byte, 1);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard lock(conns_mu_);
    conns.swap(conns_);
  }
  for (auto& conn : conns) {
    if (conn->thread.joinable()) conn->thread.join();
  }
  listen_fd_.Reset();
}

void StoreServer::Impl::ReapFinished() {
  std::list<std::unique_ptr<Connection>> done;
  {
    std::lock_guard lock(conns_mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->finished.load()) {
        done.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& conn : done) conn->thread.join();
}

void StoreServer::Impl::AcceptLoop() {
  while (true) {
    pollfd pfds[2] = {{listen_fd_.get(), POLLIN, 0}, {cancel_fd(), POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "store ", address(),
          ": poll failed, no longer accepting: ", std::strerror(errno));
      return;
    }
    if (pfds[1].revents & POLLIN) return;
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
        Log(LogLevel::kWarning, "store ", address(), ": accept: ", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ReapFinished();
    std::string peer = PeerAddress(fd.get());
    std::lock_guard lock(conns_mu_);
    if (static_cast<int>(conns_.size()) >= options_.max_connections) {
      Log(LogLevel::kWarning, "store ", address(), ": refusing ", peer, ": already serving ",
          conns_.size(), " connections (control.max_connections)");
      StoreResponse refusal{
          StatusCode::kResourceExhausted,
          StrCat("store is serving its maximum of ", options_.max_connections, " connections"), ""};
      (void)SendFrame(fd.get(), MessageType::kResponse, EncodeResponse(refusal), DeadlineIn(0.1));
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->id = next_connection_id_++;
    conn->fd = std::move(fd);
    conn->peer = std::move(peer);
    Connection& ref = *conn;
    conns_.push_back(std::move(conn));
    ref.thread = std::thread([this, &ref] { Serve(ref); });
  }
}

void StoreServer::Impl::Serve(Connection& conn) {
  const int fd = conn.fd.get();
  Status status =
      ServerHandshake(fd, options_.token, DeadlineIn(options_.handshake_timeout_s), cancel_fd());
  if (status.code() == StatusCode::kUnauthenticated) {
    Log(LogLevel::kWarning, "store ", address(), ": authentication failed for peer ", conn.peer,
        " (wrong or missing token); connection closed");
  } else if (!status.ok() && status.code() != StatusCode::kAborted) {
    Log(LogLevel::kWarning, "store ", address(), ": handshake with ", conn.peer,
        " failed, connection closed: ", status.ToString());
  }
  while (status.ok()) {
    // Idle connections may stay open indefinitely; once a message starts it must finish in time.
    status = WaitReadable(fd, DeadlineIn(1e9), cancel_fd());
    if (!status.ok()) break;
    auto frame =
        ReceiveFrame(fd, options_.max_message_size, DeadlineIn(options_.io_timeout_s), cancel_fd());
    if (!frame.ok()) {
      status = frame.status();
      if (status.code() != StatusCode::kUnavailable && status.code() != StatusCode::kAborted) {
        Log(LogLevel::kWarning, "store ", address(), ": closing the connection from ", conn.peer,
            ": ", status.ToString());
      }
      break;
    }
    auto request = DecodeRequest(*frame, options_.max_message_size);
    std::optional<StoreResponse> response;
    if (!request.ok()) {
      status = request.status();
      if (status.code() == StatusCode::kDataLoss) {
        Log(LogLevel::kWarning, "store ", address(), ": closing the connection from ", conn.peer,
            ": malformed ", MessageTypeName(frame->type), " message: ", status.message());
        break;
      }
      response = Reply(status);  // a well-formed but invalid request: answer it, keep serving
      status = Status::Ok();
    } else {
      response = Execute(conn, *request);
      if (!response) break;  // the client left while waiting
    }
    status = SendFrame(fd, MessageType::kResponse, EncodeResponse(*response),
                       DeadlineIn(options_.io_timeout_s));
  }
  {
    std::lock_guard lock(mu_);
    for (const std::string& key : conn.owned) {
      auto it = data_.find(key);
      if (it != data_.end() && it->second.owner == conn.id) data_.erase(it);
    }
    conn.owned.clear();
  }
  conn.fd.Reset();  // the peer sees the close now, not when the thread is reaped
  conn.finished.store(true);
}

std::optional<StoreResponse> StoreServer::Impl::Execute(Connection& conn,
                                                        const StoreRequest& request) {
  switch (request.op) {
    case MessageType::kSet: {
      {
        std::lock_guard lock(mu_);
        Entry& entry = data_[request.key];
        entry.value = request.value;
        entry.owner = (request.flags & kSetEphemeral) ? conn.id : 0;
        if (entry.owner != 0) conn.owned.insert(request.key);
      }
      changed_.notify_all();
      return Reply(std::string());
    }
    case MessageType::kGet: {
      std::lock_guard lock(mu_);
      auto it = data_.find(request.key);
      if (it == data_.end()) return Reply(NotFound("key is not set"));
      return Reply(EncodeValue(it->second.value));
    }
    case MessageType::kWait:
      return WaitForKey(conn, request);
    case MessageType::kAdd:
      return Add(request);
    case MessageType::kCompareAndSet:
      return CompareAndSet(request);
    case MessageType::kDelete: {
      std::lock_guard lock(mu_);
      return Reply(EncodeBool(data_.erase(request.key) > 0));
    }
    case MessageType::kList:
      return List(request);
    case MessageType::kDeletePrefix: {
      // Keys are ordered: the prefix's keys are one contiguous range of the map.
      std::lock_guard lock(mu_);
      auto it = data_.lower_bound(request.key);
      int64_t deleted = 0;
      while (it != data_.end() && it->first.starts_with(request.key)) {
        it = data_.erase(it);
        ++deleted;
      }
      return Reply(EncodeInt(deleted));
    }
    default:
      return Reply(InvalidArgument("not a store request: ", MessageTypeName(request.op)));
  }
}

std::optional<StoreResponse> StoreServer::Impl::WaitForKey(Connection& conn,
                                                           const StoreRequest& request) {
  const double timeout_s = static_cast<double>(request.number) / 1000.0;
  const Deadline deadline = DeadlineIn(timeout_s);
  std::unique_lock lock(mu_);
  while (true) {
    auto it = data_.find(request.key);
    if (it != data_.end()) return Reply(EncodeValue(it->second.value));
    if (stopping_) return Reply(Unavailable("store server is stopping"));
    if (Expired(deadline)) {
      return Reply(DeadlineExceeded("key was not set within ", timeout_s, " s"));
    }
    changed_.wait_until(lock, std::min(deadline, Clock::now() + kWaitCheckInterval));
    if (ClientGone(conn.fd.get())) return std::nullopt;
  }
}

StoreResponse StoreServer::Impl::Add(const StoreRequest& request) {
  int64_t result = 0;
  {
    std::lock_guard lock(mu_);
    Entry& entry = data_[request.key];
    int64_t current = 0;
    if (!entry.value.empty()) {
      auto parsed = ParseInt64(entry.value);
      if (!parsed) {
        return Reply(
            FailedPrecondition("key holds a value that is not a decimal int64, cannot "
                               "add to it"));
      }
      current = *parsed;
    }
    if (__builtin_add_overflow(current, request.number, &result)) {
      return Reply(OutOfRange("adding ", request.number, " to ", current, " overflows int64"));
    }
    entry.value = std::to_string(result);
    entry.owner = 0;
  }
  changed_.notify_all();
  return Reply(EncodeInt(result));
}

StoreResponse StoreServer::Impl::CompareAndSet(const StoreRequest& request) {
  CasResult result;
  {
    std::lock_guard lock(mu_);
    auto it = data_.find(request.key);
    bool matches = request.expected.has_value()
                       ? (it != data_.end() && it->second.value == *request.expected)
                       : it == data_.end();
    if (matches) {
      Entry& entry = data_[request.key];
      entry.value = request.value;
      entry.owner = 0;
      result.swapped = true;
      result.current = request.value;
    } else if (it != data_.end()) {
      result.current = it->second.value;
    }
  }
  if (result.swapped) changed_.notify_all();
  return Reply(EncodeCas(result));
}

StoreResponse StoreServer::Impl::List(const StoreRequest& request) {
  std::vector<KeyValue> entries;
  size_t total = 4;
  std::lock_guard lock(mu_);
  for (auto it = data_.lower_bound(request.key);
       it != data_.end() && it->first.starts_with(request.key); ++it) {
    total += 8 + it->first.size() + it->second.value.size();
    if (total + 64 > options_.max_message_size) {
      return Reply(ResourceExhausted("listing this prefix would exceed control.max_message_size (",
                                     options_.max_message_size, " bytes)"));
    }
    entries.push_back(KeyValue{it->first, it->second.value});
  }
  return Reply(EncodeList(entries));
}

StoreServer::StoreServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreServer::~StoreServer() { Stop(); }

Result<std::unique_ptr<StoreServer>> StoreServer::Start(StoreServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  WS_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<StoreServer>(new StoreServer(std::move(impl)));
}

uint16_t StoreServer::port() const { return impl_->port(); }
std::string StoreServer::address() const { return impl_->address(); }
int StoreServer::connection_count() const { return impl_->connection_count(); }
void StoreServer::Stop() { impl_->Stop(); }

}  // namespace weightsync::control
