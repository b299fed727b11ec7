#include "push/markers.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

namespace weightsync::push {
namespace {

TEST(Markers, WrittenMarkerIsFoundAndAMissingOneTimesOut) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("ws-marker-test-", ::getpid());
  std::filesystem::remove_all(dir);
  auto stable = MarkerPath(dir, 7, kStableMarker);
  EXPECT_EQ(stable, dir / "broadcasts" / "step_7" / "STABLE");
  ASSERT_TRUE(WriteMarker(stable, "7").ok());
  EXPECT_TRUE(WaitForMarker(stable, control::DeadlineIn(0.1)).ok());

  auto ready = MarkerPath(dir, 7, kTransferReadyMarker);
  auto start = control::Clock::now();
  Status missing = WaitForMarker(ready, control::DeadlineIn(0.3));
  double waited = std::chrono::duration<double>(control::Clock::now() - start).count();
  EXPECT_EQ(missing.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(missing.message().find("step_7/TRANSFER_READY"), std::string::npos)
      << missing.message();
  EXPECT_GE(waited, 0.29);
  EXPECT_LT(waited, 2.0);

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    EXPECT_TRUE(WriteMarker(ready).ok());
  });
  EXPECT_TRUE(WaitForMarker(ready, control::DeadlineIn(5)).ok());
  writer.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weightsync::push
