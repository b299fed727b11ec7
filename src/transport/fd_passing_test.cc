#include "transport/fd_passing.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

namespace weightsync::transport {
namespace {

TEST(FdPassingTest, ServesPublishedFdsOnly) {
  const std::string name = "weightsync-test-fd-" + std::to_string(getpid());
  auto server = FdServer::Start(name);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int memfd = memfd_create("ws", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(write(memfd, "weights", 7), 7);
  int opened = 0;
  (*server)->Publish(42, [&]() -> Result<int> {
    ++opened;
    return dup(memfd);
  });
  (*server)->Publish(43, []() -> Result<int> { return Unavailable("export refused"); });

  auto fd = FetchFd(name, 42, DeadlineIn(5));
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  char buf[8] = {};
  ASSERT_EQ(pread(*fd, buf, 7, 0), 7);
  EXPECT_STREQ(buf, "weights");
  close(*fd);
  EXPECT_EQ(opened, 1) << "opened on request, once per request";

  auto failed = FetchFd(name, 43, DeadlineIn(5));
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("could not open handle 43"), std::string::npos)
      << failed.status().ToString();

  EXPECT_EQ(FetchFd(name, 7, DeadlineIn(5)).status().code(), StatusCode::kNotFound);
  (*server)->Withdraw(42);
  EXPECT_EQ(FetchFd(name, 42, DeadlineIn(5)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(FetchFd(name + "-nobody", 42, DeadlineIn(5)).status().code(), StatusCode::kUnavailable);
  close(memfd);
}

}  // namespace
}  // namespace weightsync::transport
