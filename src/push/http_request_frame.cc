#include "push/http_request_frame.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

namespace weightsync::push {
namespace {

constexpr std::string_view kHeadEnd = "\r\n\r\n";

bool HasName(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  return std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

std::string_view Trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The body's length from the head's header lines (0 without Content-Length).
Result<size_t> BodySize(std::string_view head, const HttpRequestLimits& limits) {
  std::optional<size_t> length;
  size_t start = head.find("\r\n");
  while (start != std::string_view::npos && start + 2 < head.size()) {
    size_t end = head.find("\r\n", start + 2);
    std::string_view line = head.substr(start + 2, end - start - 2);
    start = end;
    if (HasName(line, "Transfer-Encoding")) {
      return Unimplemented("Transfer-Encoding is not supported; send Content-Length");
    }
    if (!HasName(line, "Content-Length")) continue;
    if (length) return InvalidArgument("Content-Length is given twice");
    std::string_view value = Trimmed(line.substr(sizeof("Content-Length")));
    size_t parsed = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
      return InvalidArgument("Content-Length '", value, "' is not a number");
    }
    length = parsed;
  }
  if (length.value_or(0) > limits.max_body) {
    return ResourceExhausted("request body of ", *length, " bytes is over the limit of ",
                             limits.max_body);
  }
  return length.value_or(0);
}

}  // namespace

Result<size_t> HttpRequestSize(std::string_view received, const HttpRequestLimits& limits) {
  const size_t head_end = received.substr(0, limits.max_head).find(kHeadEnd);
  if (head_end == std::string_view::npos) {
    if (received.size() >= limits.max_head) {
      return ResourceExhausted("request head is over the limit of ", limits.max_head, " bytes");
    }
    return limits.max_head;  // a guess: read on, the head ends before it or is refused
  }
  const size_t head_size = head_end + kHeadEnd.size();
  WS_ASSIGN_OR_RETURN(size_t body, BodySize(received.substr(0, head_end + 2), limits));
  return head_size + body;
}

int HttpCode(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 413;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string HttpErrorResponse(const Status& status) {
  const std::string body = nlohmann::json{{"error", status.message()}}.dump();
  return StrCat("HTTP/1.1 ", HttpCode(status), " Error\r\nContent-Type: application/json\r\n",
                "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace weightsync::push
