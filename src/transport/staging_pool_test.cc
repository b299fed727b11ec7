#include "transport/staging_pool.h"

#include <gtest/gtest.h>

#include <cstring>

namespace weightsync::transport {
namespace {

std::unique_ptr<Transport> Local(int rank) {
  TransportOptions options;
  options.self = CurrentProcessIdentity(rank);
  return std::move(CreateTransport("local", options).value());
}

TEST(StagingPool, SlotsAreRegisteredWritableAndCoalesce) {
  auto writer = Local(0);
  auto pool = StagingPool::Create(*writer, PoolMemory::kHost, 1 << 20, "trainer0.staging");
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  StagingPool& p = **pool;
  EXPECT_GE(p.stats().capacity, 1u << 20);

  auto a = p.Allocate(1000, "a");
  auto b = p.Allocate(300000, "b");
  auto c = p.Allocate(1, "c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->offset % StagingPool::kAlignment, 0u);
  EXPECT_EQ(b->offset % StagingPool::kAlignment, 0u);
  EXPECT_EQ(p.stats().slots_in_use, 3u);
  const uint64_t peak = p.stats().in_use;

  // A slot is part of the registered region: write from it through the transport.
  auto target = Local(1);
  std::vector<uint8_t> dst(300000, 0);
  auto dst_region = target->Register(dst.data(), dst.size(), MemoryKind::kHost, "dst");
  std::memset(b->data, 0x5A, b->size);
  auto peer = writer->Connect(*target->LocalAddress(), DeadlineIn(5));
  ASSERT_TRUE(peer.ok());
  auto remote = writer->Import(*peer, *target->Export(*dst_region), dst.size());
  ASSERT_TRUE(remote.ok());
  const std::vector<Write> write = {{b->region, b->offset, *remote, 0, b->size}};
  ASSERT_TRUE(writer->PostWrites(*peer, write, DeadlineIn(5)).ok());
  ASSERT_TRUE(writer->Flush(*peer, DeadlineIn(5)).ok());
  EXPECT_EQ(std::count(dst.begin(), dst.end(), 0x5A), 300000);

  // Freeing everything coalesces back into one range: the whole capacity fits again.
  ASSERT_TRUE(p.Free(*b).ok());
  ASSERT_TRUE(p.Free(*a).ok());
  ASSERT_TRUE(p.Free(*c).ok());
  EXPECT_EQ(p.stats().in_use, 0u);
  EXPECT_EQ(p.stats().peak_in_use, peak);
  auto all = p.Allocate(p.stats().capacity, "everything");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_TRUE(p.Free(*all).ok());
}

TEST(StagingPool, ErrorsNameTheSlot) {
  auto t = Local(0);
  auto pool = StagingPool::Create(*t, PoolMemory::kHost, 4096, "small");
  ASSERT_TRUE(pool.ok());
  auto too_big = (*pool)->Allocate(10ull << 30, "layers.3.experts.w13");
  EXPECT_EQ(too_big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(too_big.status().message().find("layers.3.experts.w13"), std::string::npos);
  auto slot = (*pool)->Allocate(10, "x");
  ASSERT_TRUE(slot.ok());
  ASSERT_TRUE((*pool)->Free(*slot).ok());
  EXPECT_EQ((*pool)->Free(*slot).code(), StatusCode::kInvalidArgument);  // double free
  EXPECT_EQ(StagingPool::Create(*t, PoolMemory::kHost, 0, "empty").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weightsync::transport
