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
#include "control/connection_gate.h"
#include "control/socket.h"
#include "control/store_handshake.h"
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
  explicit Impl(StoreServerOptions options)
      : options_(std::move(options)), pending_budget_(options_.max_pending_bytes) {}
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
  uint64_t pending_bytes() const { return pending_budget_.used(); }

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

  Status MayAdmit();
  void Admit(UniqueFd fd, std::string peer);
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
  ByteBudget pending_budget_;  // partial messages of every connection together
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
  WS_ASSIGN_OR_RETURN(options.max_pending_bytes, config.GetBytes("control.max_pending_bytes"));
  if (options.max_pending_bytes < max_message) {
    return InvalidArgument("control.max_pending_bytes (", options.max_pending_bytes,
                           ") must be at least control.max_message_size (", max_message, ")");
  }
  WS_ASSIGN_OR_RETURN(options.handshake_timeout_s, config.GetSeconds("control.handshake_timeout"));
  WS_ASSIGN_OR_RETURN(options.io_timeout_s, config.GetSeconds("control.io_timeout"));
  WS_ASSIGN_OR_RETURN(int64_t max_connections, config.GetCount("control.max_connections"));
  WS_ASSIGN_OR_RETURN(int64_t max_handshakes, config.GetCount("control.max_handshakes"));
  if (max_connections < 1 || max_handshakes < 1) {
    return InvalidArgument("control.max_connections and control.max_handshakes must be at least 1");
  }
  options.max_connections = static_cast<int>(std::min<int64_t>(max_connections, 1 << 20));
  options.max_handshakes = static_cast<int>(std::min<int64_t>(max_handshakes, 1 << 20));
  return options;
}

Status StoreServer::Impl::Start() {
  if (options_.token.empty()) return InvalidArgument("the store needs a non-empty token");
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) return Internal("pipe2 failed");
  // A backlog beyond what a connect flood fills before the gate accepts it: a dropped SYN costs an
  // honest client a 1 s retransmit.
  WS_ASSIGN_OR_RETURN(listen_fd_, Listen(HostPort{options_.host, options_.port}, 4096));
  // Non-blocking, so an accept after a poll wake-up whose connection was already reset returns at
  // once instead of blocking the accept thread (and Stop()).
  ::fcntl(listen_fd_.get(), F_SETFL, ::fcntl(listen_fd_.get(), F_GETFL) | O_NONBLOCK);
  WS_ASSIGN_OR_RETURN(port_, LocalPort(listen_fd_.get()));
  accept_thread_ = std::thread([this] {
    ConnectionGateOptions gate;
    gate.name = StrCat("store ", address());
    gate.timeout_s = options_.handshake_timeout_s;
    gate.max_pending = options_.max_handshakes;
    gate.timeout_setting = "control.handshake_timeout";
    gate.max_pending_setting = "control.max_handshakes";
    StoreHandshake handshake(
        gate.name, options_.token,
        {[this] { return MayAdmit(); },
         [this](UniqueFd fd, std::string peer) { Admit(std::move(fd), std::move(peer)); }});
    RunConnectionGate(listen_fd_.get(), cancel_fd(), gate, handshake);
  });
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

Status StoreServer::Impl::MayAdmit() {
  ReapFinished();
  std::lock_guard lock(conns_mu_);
  if (static_cast<int>(conns_.size()) < options_.max_connections) return Status::Ok();
  return ResourceExhausted("store is serving its maximum of ", options_.max_connections,
                           " connections (control.max_connections)");
}

// Runs on the gate's thread right after MayAdmit, which is the only place connections are added:
// the count cannot have grown in between.
void StoreServer::Impl::Admit(UniqueFd fd, std::string peer) {
  std::lock_guard lock(conns_mu_);
  auto conn = std::make_unique<Connection>();
  conn->id = next_connection_id_++;
  conn->fd = std::move(fd);
  conn->peer = std::move(peer);
  Connection& ref = *conn;
  conns_.push_back(std::move(conn));
  ref.thread = std::thread([this, &ref] { Serve(ref); });
}

void StoreServer::Impl::Serve(Connection& conn) {
  const int fd = conn.fd.get();
  Status status;
  while (status.ok()) {
    // Idle connections may stay open indefinitely; once a message starts it must finish in time.
    status = WaitReadable(fd, DeadlineIn(1e9), cancel_fd());
    if (!status.ok()) break;
    auto frame = ReceiveFrame(fd, options_.max_message_size, DeadlineIn(options_.io_timeout_s),
                              cancel_fd(), &pending_budget_);
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
uint64_t StoreServer::pending_bytes() const { return impl_->pending_bytes(); }
void StoreServer::Stop() { impl_->Stop(); }

}  // namespace weightsync::control
