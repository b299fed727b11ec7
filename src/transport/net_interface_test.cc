#include "transport/net_interface.h"

#include <gtest/gtest.h>

namespace weightsync::transport {
namespace {

TEST(NetInterface, LoopbackIsReachedThroughTheLoopbackInterface) {
  // Linux names its loopback interface "lo".
  EXPECT_EQ(InterfaceReaching("127.0.0.1").value(), "lo");
  EXPECT_EQ(InterfaceReaching("localhost").value(), "lo");
}

TEST(NetInterface, UnresolvableHostIsUnavailableNamingIt) {
  auto found = InterfaceReaching("no-such-host.invalid");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(found.status().message().find("no-such-host.invalid"), std::string::npos);
}

}  // namespace
}  // namespace weightsync::transport
