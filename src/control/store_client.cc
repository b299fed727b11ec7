#include "control/store_client.h"

#include <algorithm>
#include <thread>

#include "control/auth.h"
#include "control/wire.h"

namespace weightsync::control {
namespace {

constexpr auto kFirstRetryDelay = std::chrono::milliseconds(20);
constexpr auto kMaxRetryDelay = std::chrono::milliseconds(500);

std::string Describe(const StoreRequest& request) {
  if (request.op == MessageType::kList || request.op == MessageType::kDeletePrefix) {
    return StrCat("prefix '", request.key, "'");
  }
  return StrCat("key '", request.key, "'");
}

}  // namespace

Result<StoreClientOptions> StoreClientOptions::FromConfig(const Config& config) {
  StoreClientOptions options;
  WS_ASSIGN_OR_RETURN(uint64_t max_message, config.GetBytes("control.max_message_size"));
  if (max_message < 4096 || max_message > UINT32_MAX) {
    return InvalidArgument("control.max_message_size must be between 4KiB and 4GiB");
  }
  options.max_message_size = static_cast<uint32_t>(max_message);
  return options;
}

Result<std::unique_ptr<StoreClient>> StoreClient::Connect(StoreClientOptions options,
                                                          Deadline deadline) {
  WS_ASSIGN_OR_RETURN(HostPort where, ParseHostPort(options.address));
  std::unique_ptr<StoreClient> client(new StoreClient(std::move(options), std::move(where)));
  std::lock_guard lock(client->mu_);
  WS_RETURN_IF_ERROR(client->EnsureConnectedLocked(deadline));
  return client;
}

Status StoreClient::EnsureConnectedLocked(Deadline deadline) {
  if (fd_.valid()) return Status::Ok();
  auto delay = kFirstRetryDelay;
  Status last;
  int attempts = 0;
  while (true) {
    ++attempts;
    auto fd = ConnectOnce(where_, deadline);
    if (fd.ok()) {
      last = ClientHandshake(fd->get(), options_.token, deadline);
      if (last.ok()) {
        fd_ = std::move(*fd);
        return Status::Ok();
      }
      // A refused token or a fake store will not change by retrying.
      if (last.code() == StatusCode::kUnauthenticated) {
        return last.WithContext(StrCat("store ", options_.address));
      }
    } else {
      last = fd.status();
    }
    if (Expired(deadline) || last.code() == StatusCode::kDeadlineExceeded) break;
    auto pause = std::min<Clock::duration>(delay, deadline - Clock::now());
    std::this_thread::sleep_for(pause);
    delay = std::min<std::chrono::milliseconds>(delay * 2, kMaxRetryDelay);
  }
  return DeadlineExceeded("store ", options_.address, ": could not connect before the deadline (",
                          attempts, " attempts; last error: ", last.message(), ")");
}

Result<std::string> StoreClient::Call(const StoreRequest& request, Deadline deadline) {
  auto context = [&] { return StrCat("store ", options_.address, ": ", Describe(request)); };
  if (request.key.size() > kMaxKeySize) {
    return InvalidArgument(context(), ": key is ", request.key.size(), " bytes, the limit is ",
                           kMaxKeySize);
  }
  std::string payload = EncodeRequest(request);
  if (payload.size() > options_.max_message_size) {
    return ResourceExhausted(context(), ": request of ", payload.size(),
                             " bytes exceeds control.max_message_size (", options_.max_message_size,
                             ")");
  }
  std::lock_guard lock(mu_);
  Status connected = EnsureConnectedLocked(deadline);
  if (!connected.ok()) return connected.WithContext(Describe(request));
  Status sent = SendFrame(fd_.get(), request.op, payload, deadline);
  // The server answers a wait at its deadline at the latest; allow transit time on top.
  Deadline reply_deadline = deadline + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options_.reply_grace_s));
  Result<Frame> frame = sent.ok()
                            ? ReceiveFrame(fd_.get(), options_.max_message_size, reply_deadline)
                            : Result<Frame>(sent);
  if (!frame.ok()) {
    fd_.Reset();  // the stream is in an unknown state: a late reply must never answer a later call
    return frame.status().WithContext(context());
  }
  auto response = DecodeResponse(*frame);
  if (!response.ok()) {
    fd_.Reset();
    return response.status().WithContext(context());
  }
  if (response->code != StatusCode::kOk) {
    return Status(response->code, StrCat(context(), ": ", response->message));
  }
  return std::move(response->body);
}

Status StoreClient::Set(std::string_view key, std::string_view value, Deadline deadline,
                        SetMode mode) {
  StoreRequest request;
  request.op = MessageType::kSet;
  request.key = key;
  request.value = value;
  request.flags = mode == SetMode::kEphemeral ? kSetEphemeral : 0;
  return Call(request, deadline).status();
}

Result<std::string> StoreClient::Get(std::string_view key, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kGet;
  request.key = key;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeValue(body, options_.max_message_size);
}

Result<std::string> StoreClient::Wait(std::string_view key, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kWait;
  request.key = key;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  request.number = std::max<int64_t>(0, left);
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeValue(body, options_.max_message_size);
}

Result<int64_t> StoreClient::Add(std::string_view key, int64_t delta, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kAdd;
  request.key = key;
  request.number = delta;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeInt(body);
}

Result<CasResult> StoreClient::CompareAndSet(std::string_view key,
                                             std::optional<std::string_view> expected,
                                             std::string_view desired, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kCompareAndSet;
  request.key = key;
  if (expected) request.expected = std::string(*expected);
  request.value = desired;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeCas(body, options_.max_message_size);
}

Result<bool> StoreClient::Delete(std::string_view key, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kDelete;
  request.key = key;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeBool(body);
}

Result<int64_t> StoreClient::DeletePrefix(std::string_view prefix, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kDeletePrefix;
  request.key = prefix;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeInt(body);
}

Result<std::vector<KeyValue>> StoreClient::List(std::string_view prefix, Deadline deadline) {
  StoreRequest request;
  request.op = MessageType::kList;
  request.key = prefix;
  WS_ASSIGN_OR_RETURN(std::string body, Call(request, deadline));
  return DecodeList(body, options_.max_message_size);
}

}  // namespace weightsync::control
