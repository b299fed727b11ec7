#include "core/parallel_for.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace weightsync {
namespace {

TEST(ParallelFor, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 7}) {
    std::vector<std::atomic<int>> hits(1001);
    ASSERT_TRUE(ParallelFor(1001, threads, [&](int64_t b, int64_t e) {
                  for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
                  return Status::Ok();
                }).ok());
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST(ParallelFor, ReturnsAnError) {
  Status s = ParallelFor(100, 4, [](int64_t b, int64_t) {
    return b == 0 ? Status::Ok() : DataLoss("chunk at ", b, " failed");
  });
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(ParallelFor(0, 4, [](int64_t, int64_t) { return Internal("never called"); }).ok());
}

}  // namespace
}  // namespace weightsync
