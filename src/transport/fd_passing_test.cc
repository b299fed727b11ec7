#include "transport/fd_passing.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace weightsync::transport {
namespace {

TEST(FdPassingTest, ServesPublishedFdsOnly) {
  const std::string name = "weightsync-test-fd-" + std::to_string(getpid());
  auto server = FdServer::Start(name);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int memfd = memfd_create("ws", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(write(memfd, "weights", 7), 7);
  ASSERT_TRUE((*server)->Publish(42, memfd).ok());
  close(memfd);  // the server keeps its own copy

  auto fd = FetchFd(name, 42, DeadlineIn(5));
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  char buf[8] = {};
  ASSERT_EQ(pread(*fd, buf, 7, 0), 7);
  EXPECT_STREQ(buf, "weights");
  close(*fd);

  EXPECT_EQ(FetchFd(name, 7, DeadlineIn(5)).status().code(), StatusCode::kNotFound);
  (*server)->Withdraw(42);
  EXPECT_EQ(FetchFd(name, 42, DeadlineIn(5)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(FetchFd(name + "-nobody", 42, DeadlineIn(5)).status().code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace weightsync::transport
