// Where one HTTP/1.1 request ends, from its first bytes: what the admin endpoint's connection gate
// (control/connection_gate.h) needs to read a whole request before any thread serves it. Only the
// framing is read here (the end of the head, Content-Length); cpp-httplib parses the request.
//
// Requests with Transfer-Encoding (chunked bodies) are refused: the endpoint's requests carry no
// body, and a client that sends one states its length.
//
// Threading: plain functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync::push {

struct HttpRequestLimits {
  size_t max_head = 16 << 10;  // request line and headers
  size_t max_body = 64 << 10;
};

// The whole request's size once its head has arrived; before that, a size larger than `received`
// (read more). Errors: kResourceExhausted (head or body over the limits), kInvalidArgument (a bad
// or repeated Content-Length), kUnimplemented (Transfer-Encoding).
Result<size_t> HttpRequestSize(std::string_view received, const HttpRequestLimits& limits);

// The HTTP status code for an error (400, 401, 404, 409, 413, 501, 503, 504, else 500).
int HttpCode(const Status& status);

// A whole "Connection: close" response carrying {"error": message}, for refusing a request
// before it is parsed.
std::string HttpErrorResponse(const Status& status);

}  // namespace weightsync::push
