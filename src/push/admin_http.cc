#include "push/admin_http.h"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "control/auth.h"
#include "control/deadline.h"
#include "control/socket.h"
#include "core/log.h"

namespace weightsync::push {
namespace {

constexpr size_t kMaxRequestBody = 64 << 10;

int HttpCode(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

void Reply(httplib::Response& response, int code, const nlohmann::json& body) {
  response.status = code;
  response.set_content(body.dump(), "application/json");
}

void ReplyStatus(httplib::Response& response, const Status& status) {
  if (status.ok()) return Reply(response, 200, {{"ok", true}});
  Reply(response, HttpCode(status), {{"error", status.message()}});
}

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

class AdminServer::Impl {
 public:
  Impl(AdminOptions options, AdminHandlers handlers, std::string mac_key)
      : options_(std::move(options)),
        handlers_(std::move(handlers)),
        mac_key_(std::move(mac_key)) {}
  ~Impl() { Stop(); }

  Status Start() {
    WS_ASSIGN_OR_RETURN(control::HostPort where, control::ParseHostPort(options_.listen));
    host_ = where.host;
    auto timeout = std::chrono::duration<double>(options_.io_timeout_s);
    auto timeout_us = std::chrono::duration_cast<std::chrono::microseconds>(timeout);
    server_.set_read_timeout(timeout_us);
    server_.set_write_timeout(timeout_us);
    server_.set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, options_.io_timeout_s)));
    server_.set_payload_max_length(kMaxRequestBody);
    server_.set_pre_routing_handler(
        [this](const httplib::Request& request, httplib::Response& response) {
          if (Authorized(request)) return httplib::Server::HandlerResponse::Unhandled;
          Log(LogLevel::kWarning, "admin endpoint: authentication failed for peer ",
              request.remote_addr, ":", request.remote_port, " (", request.method, " ",
              request.path, ")");
          Reply(response, 401, {{"error", "authentication failed"}});
          return httplib::Server::HandlerResponse::Handled;
        });
    server_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
          Reply(response, 500, {{"error", "internal error"}});
        });
    server_.Get("/status", [this](const httplib::Request&, httplib::Response& response) {
      response.status = 200;
      response.set_content(handlers_.status_json(), "application/json");
    });
    server_.Get("/is_paused", [this](const httplib::Request&, httplib::Response& response) {
      Reply(response, 200, {{"is_paused", handlers_.is_paused()}});
    });
    server_.Post("/pause", [this](const httplib::Request&, httplib::Response& response) {
      ReplyStatus(response, handlers_.pause());
    });
    server_.Post("/resume", [this](const httplib::Request& request, httplib::Response& response) {
      bool force = false;
      if (request.has_param("force")) {
        auto parsed = ParseBool(request.get_param_value("force"));
        if (!parsed.ok()) return ReplyStatus(response, parsed.status().WithContext("force"));
        force = *parsed;
      }
      ReplyStatus(response, handlers_.resume(force));
    });

    if (where.port == 0) {
      int port = server_.bind_to_any_port(host_);
      if (port <= 0) return Unavailable("admin endpoint: cannot bind ", host_, ":0");
      port_ = static_cast<uint16_t>(port);
    } else {
      if (!server_.bind_to_port(host_, where.port)) {
        return Unavailable("admin endpoint: cannot bind ", options_.listen);
      }
      port_ = where.port;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost and leave the thread listening forever.
    control::Deadline deadline = control::DeadlineIn(5);
    while (!server_.is_running() && !control::Expired(deadline)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!server_.is_running()) {
      Stop();
      return Unavailable("admin endpoint on ", address(), " did not start");
    }
    Log(LogLevel::kInfo, "admin endpoint: listening on http://", address());
    return Status::Ok();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string address() const { return control::HostPort{host_, port_}.ToString(); }

 private:
  // Both sides go through an HMAC under a random key first, so the comparison is constant-time
  // and does not leak the token's length.
  bool Authorized(const httplib::Request& request) const {
    constexpr std::string_view kBearer = "Bearer ";
    std::string header = request.get_header_value("Authorization");
    std::string_view presented = header;
    if (!presented.starts_with(kBearer)) return false;
    presented.remove_prefix(kBearer.size());
    return control::MacsEqual(control::HandshakeMac(mac_key_, "admin-token", presented, ""),
                              control::HandshakeMac(mac_key_, "admin-token", options_.token, ""));
  }

  const AdminOptions options_;
  const AdminHandlers handlers_;
  const std::string mac_key_;
  httplib::Server server_;
  std::string host_;
  uint16_t port_ = 0;
  std::thread thread_;
};

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
