// Every transport test runs over every backend present (UCX's pattern in test/gtest/uct): local,
// ucx over TCP on loopback, ucx over shared memory, cuda_ipc. A backend that is missing, or that
// cannot run a case, skips it and says why.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <span>
#include <thread>

#include <gtest/gtest.h>

#include "transport/peer_process_testing.h"
#include "transport/socket_channel.h"
#include "transport/test_plan.h"
#include "transport/transport.h"

namespace weightsync::transport {
namespace {

using testing::FillRandom;
using testing::MakePlan;

struct BackendCase {
  std::string label, backend, tls, net_devices;
};

// Short names in ctest output instead of a byte dump of the struct.
void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.label; }

std::string CaseName(const ::testing::TestParamInfo<BackendCase>& info) { return info.param.label; }

testing::PeerSpec Spec(const BackendCase& c) { return {c.backend, c.tls, c.net_devices}; }
using testing::PeerProcess;

// Loopback only (security rule for tests): TCP on lo, shared memory between local processes.
const std::vector<BackendCase> kCases = {
    {"local", "local", "", ""},
    {"ucx_tcp", "ucx", "tcp", "lo"},
    {"ucx_shm", "ucx", "sm", ""},
    {"cuda_ipc", "cuda_ipc", "", ""},
};

uint64_t EnvBytes(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

class TransportTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  // The environment's transport.* rows (e.g. WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR, to run these
  // cases against another UCX), then the case's own settings.
  TransportOptions Options(int32_t rank) const {
    auto config = Config::FromEnvironment();
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    auto from_config = OptionsFromConfig(config.ok() ? *config : Config::Defaults(), rank);
    EXPECT_TRUE(from_config.ok()) << from_config.status().ToString();
    TransportOptions o = from_config.ok() ? *from_config : TransportOptions{};
    o.self = CurrentProcessIdentity(rank);
    o.ucx_tls = GetParam().tls;
    o.ucx_net_devices = GetParam().net_devices;
    return o;
  }
  // Skips (with the reason) when the backend is missing or cannot register host memory.
  std::unique_ptr<Transport> MakeOrSkip(int32_t rank, int64_t max_in_flight = 256) {
    TransportOptions o = Options(rank);
    o.max_in_flight = max_in_flight;
    auto t = CreateTransport(GetParam().backend, o);
    if (!t.ok()) {
      skip_reason_ = t.status().message();
      return nullptr;
    }
    if (!(*t)->capabilities().host_memory) {
      skip_reason_ = GetParam().backend + " writes GPU memory only; its tests run on GPU hosts "
                     "(bench/gpu/transport_gpu.sh)";
      return nullptr;
    }
    return std::move(*t);
  }
  bool NeedsMultiProcess() {
    if (GetParam().backend == "local") {
      skip_reason_ = "the local backend writes only within one process";
      return false;
    }
    return true;
  }
  // Writes the plan for `seed` from `src` into the remote region and flushes.
  static Status WritePlan(Transport& t, PeerId peer, RegionId src_region, RemoteRegionId dst,
                          const std::vector<testing::PlannedWrite>& plan, double timeout_s) {
    std::vector<Write> writes;
    for (const auto& p : plan) writes.push_back({src_region, p.src_offset, dst, p.dst_offset, p.length});
    const Deadline deadline = DeadlineIn(timeout_s);
    WS_RETURN_IF_ERROR(t.PostWrites(peer, writes, deadline));
    return t.Flush(peer, deadline);
  }
  std::string skip_reason_;
};

#define MAKE_OR_SKIP(var, ...)                        \
  auto var = MakeOrSkip(__VA_ARGS__);                 \
  if (!var) GTEST_SKIP() << skip_reason_

// Runs a target's progress on its own thread while the test thread writes (the threading contract
// allows one thread at a time per instance; start/join order the hand-over).
class ProgressThread {
 public:
  explicit ProgressThread(Transport& t)
      : thread_([this, &t] {
          while (!stop_.load(std::memory_order_relaxed)) t.Progress();
        }) {}
  ~ProgressThread() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_P(TransportTest, CapabilitiesSayWhyUnavailable) {
  const Capabilities caps = ProbeBackend(GetParam().backend, Options(0));
  if (caps.available) {
    EXPECT_TRUE(caps.host_memory || caps.gpu_memory);
    EXPECT_TRUE(caps.one_sided);
  } else {
    EXPECT_EQ(caps.unavailable_reason.rfind("unavailable: ", 0), 0u) << caps.unavailable_reason;
  }
}

// A UCX without the CUDA memory type (Debian's, RAPIDS' CUDA build on a host without a driver)
// refuses GPU memory at Register, before UCX sees the pointer, saying why and what to change.
TEST_P(TransportTest, UcxGpuRegistrationRefusedSayingWhy) {
  if (GetParam().backend != "ucx") GTEST_SKIP() << "ucx only";
  MAKE_OR_SKIP(t, 0);
  if (t->capabilities().gpu_memory) {
    GTEST_SKIP() << "this UCX takes GPU memory (" << t->capabilities().detail
                 << "): transport_gpu_test writes it on GPU hosts";
  }
  alignas(64) static uint8_t not_device_memory[4096];
  auto refused = t->Register(not_device_memory, sizeof(not_device_memory), MemoryKind::kCuda,
                             "layers.3.mlp.experts.w13");
  ASSERT_EQ(refused.status().code(), StatusCode::kUnimplemented) << refused.status().ToString();
  const std::string& message = refused.status().message();
  EXPECT_NE(message.find("layers.3.mlp.experts.w13"), std::string::npos) << message;
  EXPECT_NE(message.find("GPU memory no ("), std::string::npos) << message;
  // The reason names what to change: the TLS list, the driver, or the UCX build to load.
  const bool actionable = message.find("transport.ucx_tls=") != std::string::npos ||
                          message.find("libcuda.so.1") != std::string::npos ||
                          message.find("transport.ucx_library_dir") != std::string::npos;
  EXPECT_TRUE(actionable) << message;
}

// Memory from the backend's own allocator (for UCX: shared memory, which puts over shm reach with
// one-sided copies) takes the same writes as registered memory and is freed by Deregister.
TEST_P(TransportTest, AllocatedRegionTakesWrites) {
  MAKE_OR_SKIP(writer, 0);
  MAKE_OR_SKIP(target, 1);
  const uint64_t size = 3 << 20;
  if (!target->capabilities().host_memory) {
    auto refused = target->AllocateAndRegister(size, "dst");
    EXPECT_EQ(refused.status().code(), StatusCode::kUnimplemented) << refused.status().ToString();
    return;
  }
  std::vector<uint8_t> src(4 << 20), expected(size);
  FillRandom(testing::SourceSeed(9), src);
  FillRandom(testing::kInitialSeed, expected);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto dst_region = target->AllocateAndRegister(size, "dst");
  ASSERT_TRUE(src_region.ok() && dst_region.ok()) << dst_region.status().ToString();
  auto dst_address = target->RegionAddress(*dst_region);
  ASSERT_TRUE(dst_address.ok() && *dst_address != nullptr);
  std::span<uint8_t> dst(static_cast<uint8_t*>(*dst_address), size);
  FillRandom(testing::kInitialSeed, dst);
  auto descriptor = target->Export(*dst_region);
  ASSERT_TRUE(descriptor.ok());
  EXPECT_EQ(descriptor->length, size);
  auto address = target->LocalAddress();
  ASSERT_TRUE(address.ok()) << address.status().ToString();
  auto peer = writer->Connect(*address, DeadlineIn(10));
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto remote = writer->Import(*peer, *descriptor, size);
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  const auto plan = MakePlan(9, src.size(), size, 1 << 20);
  testing::ApplyPlan(plan, src, expected);
  {
    ProgressThread pump(*target);
    const Status s = WritePlan(*writer, *peer, *src_region, *remote, plan, 60);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_TRUE(std::equal(dst.begin(), dst.end(), expected.begin())) << plan.size() << " writes";
  ASSERT_TRUE(writer->Disconnect(*peer).ok());
  EXPECT_TRUE(target->Deregister(*dst_region).ok());
  EXPECT_EQ(target->RegionAddress(*dst_region).status().code(), StatusCode::kNotFound);
}

TEST_P(TransportTest, InProcessRandomWritesVerified) {
  MAKE_OR_SKIP(writer, 0);
  MAKE_OR_SKIP(target, 1);
  std::vector<uint8_t> src(8 << 20), dst(6 << 20), expected(dst.size());
  FillRandom(testing::SourceSeed(7), src);
  FillRandom(testing::kInitialSeed, dst);
  FillRandom(testing::kInitialSeed, expected);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto dst_region = target->Register(dst.data(), dst.size(), MemoryKind::kHost, "dst");
  ASSERT_TRUE(src_region.ok() && dst_region.ok());
  auto descriptor = target->Export(*dst_region);
  auto address = target->LocalAddress();
  ASSERT_TRUE(address.ok()) << address.status().ToString();
  auto peer = writer->Connect(*address, DeadlineIn(10));
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto remote = writer->Import(*peer, *descriptor, dst.size());
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  const auto plan = MakePlan(7, src.size(), dst.size(), 2 << 20);
  testing::ApplyPlan(plan, src, expected);
  {
    ProgressThread pump(*target);
    const Status s = WritePlan(*writer, *peer, *src_region, *remote, plan, 60);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_TRUE(dst == expected);
  EXPECT_EQ(writer->stats().writes_posted, plan.size());
}

TEST_P(TransportTest, BatchOutOfBoundsRefusedBeforeAnyWrite) {
  MAKE_OR_SKIP(writer, 0);
  MAKE_OR_SKIP(target, 1);
  std::vector<uint8_t> src(4096, 0xAB), dst(1024, 0);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto dst_region = target->Register(dst.data(), dst.size(), MemoryKind::kHost, "layers.0.norm");
  auto peer = writer->Connect(*target->LocalAddress(), DeadlineIn(10));
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto remote = writer->Import(*peer, *target->Export(*dst_region), 0);
  ASSERT_TRUE(remote.ok());
  const std::vector<Write> batch = {{*src_region, 0, *remote, 0, 512},
                                    {*src_region, 0, *remote, 768, 512}};  // ends past 1024
  const Status s = writer->PostWrites(*peer, batch, DeadlineIn(10));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("layers.0.norm"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
  {
    ProgressThread pump(*target);
    ASSERT_TRUE(writer->Flush(*peer, DeadlineIn(10)).ok());
  }
  EXPECT_EQ(std::count(dst.begin(), dst.end(), 0), 1024) << "the valid first write was posted";
}

TEST_P(TransportTest, ImportRefusesBadDescriptors) {
  MAKE_OR_SKIP(writer, 0);
  MAKE_OR_SKIP(target, 1);
  std::vector<uint8_t> dst(4096);
  auto dst_region = target->Register(dst.data(), dst.size(), MemoryKind::kHost, "experts.w13");
  auto peer = writer->Connect(*target->LocalAddress(), DeadlineIn(10));
  ASSERT_TRUE(peer.ok());
  const RegionDescriptor good = *target->Export(*dst_region);

  auto too_short = writer->Import(*peer, good, 8192);
  EXPECT_EQ(too_short.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_short.status().message().find("experts.w13"), std::string::npos);

  RegionDescriptor unregistered = good;
  unregistered.key.clear();
  EXPECT_EQ(writer->Import(*peer, unregistered, 0).status().code(),
            StatusCode::kFailedPrecondition);

  RegionDescriptor other_owner = good;
  other_owner.owner.rank = 99;
  EXPECT_EQ(writer->Import(*peer, other_owner, 0).status().code(), StatusCode::kInvalidArgument);

  RegionDescriptor other_backend = good;
  other_backend.backend = "nixl";
  EXPECT_EQ(writer->Import(*peer, other_backend, 0).status().code(),
            StatusCode::kInvalidArgument);

  auto bytes = good.Serialize();
  bytes[bytes.size() / 2] ^= 1;
  EXPECT_EQ(RegionDescriptor::Deserialize(bytes).status().code(), StatusCode::kDataLoss);
  bytes = good.Serialize();
  bytes.resize(bytes.size() - 3);
  EXPECT_EQ(RegionDescriptor::Deserialize(bytes).status().code(), StatusCode::kDataLoss);

  if (GetParam().backend == "local") {
    // The local backend can ask the owner: a deregistered region is refused.
    ASSERT_TRUE(target->Deregister(*dst_region).ok());
    EXPECT_EQ(writer->Import(*peer, good, 0).status().code(), StatusCode::kFailedPrecondition);
  }
}

TEST_P(TransportTest, InFlightWritesStayBounded) {
  MAKE_OR_SKIP(writer, 0, /*max_in_flight=*/8);
  MAKE_OR_SKIP(target, 1);
  std::vector<uint8_t> src(1 << 20), dst(1 << 20);
  FillRandom(1, src);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto dst_region = target->Register(dst.data(), dst.size(), MemoryKind::kHost, "dst");
  auto peer = writer->Connect(*target->LocalAddress(), DeadlineIn(10));
  auto remote = writer->Import(*peer, *target->Export(*dst_region), dst.size());
  ASSERT_TRUE(remote.ok());
  std::vector<Write> writes;
  for (uint64_t off = 0; off < dst.size(); off += 128) {
    writes.push_back({*src_region, off, *remote, off, 128});  // 8192 small writes
  }
  {
    ProgressThread pump(*target);
    const Status posted = writer->PostWrites(*peer, writes, DeadlineIn(60));
    ASSERT_TRUE(posted.ok()) << posted.ToString();
    ASSERT_TRUE(writer->Flush(*peer, DeadlineIn(60)).ok());
  }
  EXPECT_LE(writer->stats().max_in_flight_seen, 8u);
  EXPECT_TRUE(src == dst);
}

TEST_P(TransportTest, MultiProcessRandomWritesVerified) {
  if (!NeedsMultiProcess()) GTEST_SKIP() << skip_reason_;
  MAKE_OR_SKIP(writer, 0);
  const uint64_t dst_size = EnvBytes("WEIGHTSYNC_TEST_TRANSPORT_BYTES", 96ull << 20);
  const uint64_t src_size = std::min<uint64_t>(dst_size, 64ull << 20);
  auto peer_process = PeerProcess::Spawn(Spec(GetParam()), dst_size, 1);
  ASSERT_TRUE(peer_process.ok()) << peer_process.status().ToString();
  std::vector<uint8_t> src(src_size);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto peer = writer->Connect((*peer_process)->address(), DeadlineIn(10));
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto remote = writer->Import(*peer, (*peer_process)->descriptor(), dst_size);
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  // Small writes, then writes up to the whole source.
  for (const auto& [seed, max_write] : {std::pair<uint64_t, uint64_t>{11, 4096},
                                        {12, 1 << 20}, {13, src_size}}) {
    FillRandom(testing::SourceSeed(seed), src);
    const auto plan = MakePlan(seed, src_size, dst_size, max_write);
    const Status s = WritePlan(*writer, *peer, *src_region, *remote, plan, 300);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto verdict = (*peer_process)->Command(StrCat("VERIFY ", seed, " ", src_size, " ", max_write));
    ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
    EXPECT_EQ(*verdict, "OK") << "seed " << seed << ", " << plan.size() << " writes";
  }
}

TEST_P(TransportTest, PeerKilledMidBatchThenReconnect) {
  if (!NeedsMultiProcess()) GTEST_SKIP() << skip_reason_;
  MAKE_OR_SKIP(writer, 0, /*max_in_flight=*/64);
  const uint64_t size = 64ull << 20;
  auto first = PeerProcess::Spawn(Spec(GetParam()), size, 1);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::vector<uint8_t> src(size);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto peer = writer->Connect((*first)->address(), DeadlineIn(10));
  ASSERT_TRUE(peer.ok());
  auto remote = writer->Import(*peer, (*first)->descriptor(), size);
  ASSERT_TRUE(remote.ok());
  std::vector<Write> batch;
  for (uint64_t off = 0; off < size; off += 64 << 10) batch.push_back({*src_region, off, *remote, off, 64 << 10});

  const pid_t victim = (*first)->pid();
  const double kDeadline = 20;
  const Deadline deadline = DeadlineIn(kDeadline);
  const auto start = Clock::now();
  Status status = writer->PostWrites(*peer, std::span(batch).first(batch.size() / 2), deadline);
  ASSERT_TRUE(status.ok()) << status.ToString();
  (*first)->Kill();  // kill -9 in the middle of the batch
  status = writer->PostWrites(*peer, std::span(batch).subspan(batch.size() / 2), deadline);
  for (int i = 0; status.ok() && i < 50; ++i) {
    status = writer->Flush(*peer, deadline);
    if (status.ok()) status = writer->PostWrites(*peer, batch, deadline);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_FALSE(status.ok()) << "writes to a killed peer kept succeeding";
  EXPECT_NE(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_NE(status.message().find("pid " + std::to_string(victim)), std::string::npos)
      << status.ToString();
  EXPECT_LT(elapsed, kDeadline);

  // Tear down and reconnect to a fresh peer: the writer is fully usable again.
  ASSERT_TRUE(writer->Disconnect(*peer).ok());
  auto second = PeerProcess::Spawn(Spec(GetParam()), size, 2);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto peer2 = writer->Connect((*second)->address(), DeadlineIn(10));
  ASSERT_TRUE(peer2.ok()) << peer2.status().ToString();
  auto remote2 = writer->Import(*peer2, (*second)->descriptor(), size);
  ASSERT_TRUE(remote2.ok()) << remote2.status().ToString();
  FillRandom(testing::SourceSeed(21), src);
  const auto plan = MakePlan(21, size, size, 1 << 20);
  const Status s = WritePlan(*writer, *peer2, *src_region, *remote2, plan, 60);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*(*second)->Command(StrCat("VERIFY 21 ", size, " ", 1 << 20)), "OK");
}

TEST_P(TransportTest, StoppedPeerHitsDeadline) {
  if (!NeedsMultiProcess()) GTEST_SKIP() << skip_reason_;
  if (GetParam().label != "ucx_tcp") {
    GTEST_SKIP() << "only TCP needs the target's CPU; over " << GetParam().label
                 << " a stopped peer still receives writes";
  }
  MAKE_OR_SKIP(writer, 0, /*max_in_flight=*/16);
  const uint64_t size = 64ull << 20;
  auto target = PeerProcess::Spawn(Spec(GetParam()), size, 1);
  ASSERT_TRUE(target.ok());
  std::vector<uint8_t> src(size);
  auto src_region = writer->Register(src.data(), src.size(), MemoryKind::kHost, "src");
  auto peer = writer->Connect((*target)->address(), DeadlineIn(10));
  auto remote = writer->Import(*peer, (*target)->descriptor(), size);
  ASSERT_TRUE(remote.ok());
  kill((*target)->pid(), SIGSTOP);
  std::vector<Write> batch;
  for (int round = 0; round < 4; ++round) {
    for (uint64_t off = 0; off < size; off += 1 << 20) batch.push_back({*src_region, off, *remote, off, 1 << 20});
  }
  const auto start = Clock::now();
  Status s = writer->PostWrites(*peer, batch, DeadlineIn(1.0));
  if (s.ok()) s = writer->Flush(*peer, DeadlineIn(1.0));
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  kill((*target)->pid(), SIGCONT);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.ToString();
  EXPECT_LT(elapsed, 5.0);
  (*target)->Kill();
}

INSTANTIATE_TEST_SUITE_P(Backends, TransportTest, ::testing::ValuesIn(kCases), CaseName);

}  // namespace
}  // namespace weightsync::transport
