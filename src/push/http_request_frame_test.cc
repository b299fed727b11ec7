#include "push/http_request_frame.h"

#include <gtest/gtest.h>

namespace weightsync::push {
namespace {

TEST(HttpRequestFrame, SizeOnceTheHeadIsIn) {
  const HttpRequestLimits limits;
  const std::string head = "POST /pause HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(HttpRequestSize(head, limits).value(), head.size());  // no body: complete
  const std::string with_body = "POST /x HTTP/1.1\r\ncontent-length:  3 \r\n\r\n";
  EXPECT_EQ(HttpRequestSize(with_body, limits).value(), with_body.size() + 3);
  EXPECT_EQ(HttpRequestSize(with_body + "abcNEXT", limits).value(), with_body.size() + 3);
  // Incomplete heads ask for more.
  for (std::string partial : {"", "GET", "GET / HTTP/1.1\r\nHost: a\r\n"}) {
    EXPECT_GT(HttpRequestSize(partial, limits).value(), partial.size()) << partial;
  }
}

TEST(HttpRequestFrame, RefusesWhatItCannotFrame) {
  const HttpRequestLimits limits{64, 10};
  struct Case {
    std::string request;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {std::string(64, 'a'), StatusCode::kResourceExhausted},  // no head end within the limit
      {"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", StatusCode::kResourceExhausted},
      {"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", StatusCode::kInvalidArgument},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", StatusCode::kInvalidArgument},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
       StatusCode::kInvalidArgument},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", StatusCode::kUnimplemented},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(HttpRequestSize(c.request, limits).status().code(), c.code) << c.request;
  }
}

TEST(HttpRequestFrame, ErrorResponsesAreWholeAndClose) {
  std::string response = HttpErrorResponse(ResourceExhausted("too big"));
  EXPECT_TRUE(response.starts_with("HTTP/1.1 413 ")) << response;
  EXPECT_NE(response.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(response.ends_with("\r\n\r\n{\"error\":\"too big\"}")) << response;
  EXPECT_EQ(HttpCode(Unimplemented("x")), 501);
  EXPECT_EQ(HttpCode(FailedPrecondition("x")), 409);
}

}  // namespace
}  // namespace weightsync::push
