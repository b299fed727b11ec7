#include "push/admin_http.h"

#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "control/auth.h"
#include "control/connection_gate.h"
#include "control/deadline.h"
#include "control/socket.h"
#include "core/log.h"
#include "push/http_request_frame.h"

namespace weightsync::push {
namespace {

// Connections whose request is still arriving, at most (the oldest is closed for a newer one).
constexpr int kMaxWaitingConnections = 128;
// Threads that run the handlers; whole requests only ever reach them, so each is busy for the
// handler's time alone (a /pause waits for the engine).
constexpr int kWorkers = 4;
// Whole requests waiting for a worker; more are answered 503 at once.
constexpr size_t kMaxQueued = 64;

void Reply(httplib::Response& response, int code, const nlohmann::json& body) {
  response.status = code;
  response.set_content(body.dump(), "application/json");
}

void ReplyStatus(httplib::Response& response, const Status& status) {
  if (status.ok()) return Reply(response, 200, {{"ok", true}});
  Reply(response, HttpCode(status), {{"error", status.message()}});
}

// cpp-httplib's request parsing and routing, fed with a request that has arrived whole.
class RequestServer : public httplib::Server {
 public:
  void ServeOne(httplib::Stream& stream) {
    bool closed = false;
    process_request(stream, /*close_connection=*/true, closed, [](httplib::Request&) {});
  }
};

// One whole request, already read, as cpp-httplib's stream: reads come from the buffer (its end is
// the end of the request, so a POST without a body is complete at once); writes go to the socket,
// bounded by a deadline.
class WholeRequestStream final : public httplib::Stream {
 public:
  WholeRequestStream(int fd, std::string request, const std::string& peer,
                     control::Deadline deadline)
      : fd_(fd), request_(std::move(request)), deadline_(deadline) {
    if (auto where = control::ParseHostPort(peer); where.ok()) peer_ = *where;
  }
  bool is_readable() const override { return read_ < request_.size(); }
  bool is_writable() const override { return !control::Expired(deadline_); }
  ssize_t read(char* ptr, size_t size) override {
    size = std::min(size, request_.size() - read_);
    std::copy_n(request_.data() + read_, size, ptr);
    read_ += size;
    return static_cast<ssize_t>(size);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!control::WriteAll(fd_, std::string_view(ptr, size), deadline_).ok()) return -1;
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = peer_.host;
    port = peer_.port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return fd_; }

 private:
  const int fd_;
  const std::string request_;
  const control::Deadline deadline_;
  control::HostPort peer_;
  size_t read_ = 0;
};

struct WholeRequest {
  UniqueFd fd;
  std::string peer;
  std::string bytes;
};

}  // namespace

AdminHandlers AdminHandlersFor(InferencePush& agent) {
  AdminHandlers handlers;
  handlers.status_json = [&agent] { return agent.Snapshot().ToJson(); };
  handlers.is_paused = [&agent] { return agent.Snapshot().state != InferenceState::kServing; };
  handlers.pause = [&agent] { return agent.Pause(); };
  handlers.resume = [&agent](bool force) { return agent.Resume(force); };
  return handlers;
}

Result<AdminOptions> AdminOptions::FromConfig(const Config& config) {
  AdminOptions options;
  WS_ASSIGN_OR_RETURN(options.listen, config.GetString("admin.listen"));
  WS_ASSIGN_OR_RETURN(options.io_timeout_s, config.GetSeconds("admin.io_timeout"));
  return options;
}

class AdminServer::Impl final : public control::GateProtocol {
 public:
  Impl(AdminOptions options, AdminHandlers handlers, std::string mac_key)
      : options_(std::move(options)),
        handlers_(std::move(handlers)),
        mac_key_(std::move(mac_key)) {}
  ~Impl() override {
    Stop();
    for (int fd : wake_pipe_) {
      if (fd >= 0) ::close(fd);
    }
  }

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }
  std::string address() const { return control::HostPort{host_, port_}.ToString(); }

  // control::GateProtocol, on the gate's thread.
  Result<size_t> FirstMessageSize(std::string_view received) override {
    return HttpRequestSize(received, HttpRequestLimits{});
  }
  void Refuse(int fd, const Status& why) override {
    (void)control::SendNow(fd, HttpErrorResponse(why));
  }
  void Take(UniqueFd fd, std::string peer, std::string request, std::string) override;

 private:
  void AddRoutes();
  void Work();
  bool Authorized(const httplib::Request& request) const;

  const AdminOptions options_;
  const AdminHandlers handlers_;
  const std::string mac_key_;
  RequestServer http_;
  UniqueFd listen_fd_;
  std::string host_;
  uint16_t port_ = 0;
  int wake_pipe_[2] = {-1, -1};  // written by Stop(): the gate's poll watches the read end
  std::thread gate_;
  std::vector<std::thread> workers_;

  std::mutex mu_;  // guards queue_ and stopping_
  std::condition_variable queued_;
  std::deque<WholeRequest> queue_;
  bool stopping_ = false;
};

Status AdminServer::Impl::Start() {
  WS_ASSIGN_OR_RETURN(control::HostPort where, control::ParseHostPort(options_.listen));
  host_ = where.host;
  auto listening = control::Listen(where, 512);
  if (!listening.ok()) return listening.status().WithContext("admin endpoint");
  listen_fd_ = std::move(*listening);
  ::fcntl(listen_fd_.get(), F_SETFL, ::fcntl(listen_fd_.get(), F_GETFL) | O_NONBLOCK);
  WS_ASSIGN_OR_RETURN(port_, control::LocalPort(listen_fd_.get()));
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) return Internal("admin endpoint: pipe2 failed");
  AddRoutes();
  for (int i = 0; i < kWorkers; ++i) workers_.emplace_back([this] { Work(); });
  gate_ = std::thread([this] {
    control::ConnectionGateOptions gate;
    gate.name = StrCat("admin endpoint ", address());
    gate.timeout_s = options_.io_timeout_s;
    gate.max_pending = kMaxWaitingConnections;
    gate.timeout_setting = "admin.io_timeout";
    gate.max_pending_setting = "a fixed bound";
    control::RunConnectionGate(listen_fd_.get(), wake_pipe_[0], gate, *this);
  });
  Log(LogLevel::kInfo, "admin endpoint: listening on http://", address());
  return Status::Ok();
}

void AdminServer::Impl::Stop() {
  if (!gate_.joinable()) return;
  char byte = 1;
  (void)!::write(wake_pipe_[1], &byte, 1);
  gate_.join();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();  // closes the connections nobody started on
  }
  queued_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  listen_fd_.Reset();
}

void AdminServer::Impl::Take(UniqueFd fd, std::string peer, std::string request, std::string) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < kMaxQueued) {
      queue_.push_back({std::move(fd), std::move(peer), std::move(request)});
      queued_.notify_one();
      return;
    }
  }
  Refuse(fd.get(), Unavailable("admin endpoint is busy: ", kMaxQueued, " requests are queued"));
}

void AdminServer::Impl::Work() {
  while (true) {
    WholeRequest request;
    {
      std::unique_lock lock(mu_);
      queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      request = std::move(queue_.front());
      queue_.pop_front();
    }
    WholeRequestStream stream(request.fd.get(), std::move(request.bytes), request.peer,
                              control::DeadlineIn(options_.io_timeout_s));
    http_.ServeOne(stream);
  }
}

void AdminServer::Impl::AddRoutes() {
  http_.set_payload_max_length(HttpRequestLimits{}.max_body);
  http_.set_pre_routing_handler([this](const httplib::Request& request,
                                       httplib::Response& response) {
    if (Authorized(request)) return httplib::Server::HandlerResponse::Unhandled;
    Log(LogLevel::kWarning, "admin endpoint: authentication failed for peer ", request.remote_addr,
        ":", request.remote_port, " (", request.method, " ", request.path, ")");
    Reply(response, 401, {{"error", "authentication failed"}});
    return httplib::Server::HandlerResponse::Handled;
  });
  http_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        Reply(response, 500, {{"error", "internal error"}});
      });
  http_.Get("/status", [this](const httplib::Request&, httplib::Response& response) {
    response.status = 200;
    response.set_content(handlers_.status_json(), "application/json");
  });
  http_.Get("/is_paused", [this](const httplib::Request&, httplib::Response& response) {
    Reply(response, 200, {{"is_paused", handlers_.is_paused()}});
  });
  http_.Post("/pause", [this](const httplib::Request&, httplib::Response& response) {
    ReplyStatus(response, handlers_.pause());
  });
  http_.Post("/resume", [this](const httplib::Request& request, httplib::Response& response) {
    bool force = false;
    if (request.has_param("force")) {
      auto parsed = ParseBool(request.get_param_value("force"));
      if (!parsed.ok()) return ReplyStatus(response, parsed.status().WithContext("force"));
      force = *parsed;
    }
    ReplyStatus(response, handlers_.resume(force));
  });
}

// Both sides go through an HMAC under a random key first, so the comparison is constant-time and
// does not leak the token's length.
bool AdminServer::Impl::Authorized(const httplib::Request& request) const {
  constexpr std::string_view kBearer = "Bearer ";
  std::string header = request.get_header_value("Authorization");
  std::string_view presented = header;
  if (!presented.starts_with(kBearer)) return false;
  presented.remove_prefix(kBearer.size());
  return control::MacsEqual(control::HandshakeMac(mac_key_, "admin-token", presented, ""),
                            control::HandshakeMac(mac_key_, "admin-token", options_.token, ""));
}

Result<std::unique_ptr<AdminServer>> AdminServer::Start(AdminOptions options,
                                                        AdminHandlers handlers) {
  if (options.token.empty())
    return InvalidArgument("admin endpoint: refusing to start without a token");
  if (!handlers.status_json || !handlers.is_paused || !handlers.pause || !handlers.resume) {
    return InvalidArgument("admin endpoint: every handler must be set");
  }
  WS_ASSIGN_OR_RETURN(std::string mac_key, control::RandomNonce());
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handlers), std::move(mac_key));
  WS_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() = default;
uint16_t AdminServer::port() const { return impl_->port(); }
std::string AdminServer::address() const { return impl_->address(); }
void AdminServer::Stop() { impl_->Stop(); }

}  // namespace weightsync::push
