#include "transport/descriptor.h"

#include <gtest/gtest.h>

namespace weightsync::transport {
namespace {

RegionDescriptor Sample() {
  RegionDescriptor d;
  d.backend = "ucx";
  d.name = "model.layers.3.mlp.experts.w13_weight";
  d.kind = MemoryKind::kCuda;
  d.address = 0x7f0000001000;
  d.length = 1ull << 33;
  d.region_id = 42;
  d.owner = CurrentProcessIdentity(5);
  d.key = {1, 2, 3, 4, 5};
  return d;
}

TEST(DescriptorTest, RoundTrips) {
  const RegionDescriptor d = Sample();
  auto back = RegionDescriptor::Deserialize(d.Serialize());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->backend, d.backend);
  EXPECT_EQ(back->name, d.name);
  EXPECT_EQ(back->kind, d.kind);
  EXPECT_EQ(back->address, d.address);
  EXPECT_EQ(back->length, d.length);
  EXPECT_EQ(back->region_id, d.region_id);
  EXPECT_EQ(back->owner, d.owner);
  EXPECT_EQ(back->key, d.key);
}

TEST(DescriptorTest, EveryTruncationAndBitFlipIsRefused) {
  const auto bytes = Sample().Serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = RegionDescriptor::Deserialize(std::span(bytes).first(n));
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "truncated to " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto copy = bytes;
    copy[i] ^= 0x10;
    EXPECT_FALSE(RegionDescriptor::Deserialize(copy).ok()) << "flip at " << i;
  }
}

TEST(DescriptorTest, AddressIsNotARegion) {
  PeerAddress a{"ucx", CurrentProcessIdentity(1), {9, 8, 7}};
  auto back = PeerAddress::Deserialize(a.Serialize());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->address, a.address);
  EXPECT_EQ(back->owner, a.owner);
  EXPECT_EQ(RegionDescriptor::Deserialize(a.Serialize()).status().code(), StatusCode::kDataLoss);
}

TEST(DescriptorTest, IdentityNamesTheProcess) {
  const OwnerIdentity me = CurrentProcessIdentity(3);
  EXPECT_NE(me.ToString().find("rank 3"), std::string::npos);
  EXPECT_NE(me.ToString().find("pid "), std::string::npos);
  EXPECT_TRUE(me.SameMachineAs(CurrentProcessIdentity(0)));
  OwnerIdentity other = me;
  other.boot_id ^= 1;
  EXPECT_FALSE(me.SameMachineAs(other));
}

}  // namespace
}  // namespace weightsync::transport
