// The ucx backend with GPU memory (run on GPU hosts by bench/gpu/ucx_gpu.sh; skips, saying why,
// where the loaded UCX has no CUDA memory type or there is no GPU). A second process registers
// device memory on another GPU (the same one on a 1-GPU host); this process writes random ranges
// into it over UCX (cuda_ipc between GPUs of one host) from its own device memory, and from host
// memory, and the peer checks every byte. The UCX is the one transport.ucx_library_dir names
// (WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR), e.g. the libucx-cu13 wheel's.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "transport/device_buffer_testing.h"
#include "transport/peer_process_testing.h"
#include "transport/test_plan.h"

namespace weightsync::transport {
namespace {

using testing::DeviceBuffer;
using testing::EnvBytes;
using testing::PeerProcess;

// The UCX transports for GPU memory on one host: shared memory for UCX's own wire-up messages,
// cuda_copy for memory-type detection and staging, cuda_ipc for the GPU-to-GPU puts.
constexpr const char* kGpuTls = "sm,cuda_copy,cuda_ipc";

class UcxGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto api = LoadCudaApi();
    if (!api.ok()) GTEST_SKIP() << api.status().message();
    int count = 0;
    if ((*api)->init(0) != CUDA_SUCCESS || (*api)->device_get_count(&count) != CUDA_SUCCESS ||
        count < 1) {
      GTEST_SKIP() << "no CUDA device on this host";
    }
    peer_device_ = count > 1 ? 1 : 0;
    auto config = Config::FromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    auto options = OptionsFromConfig(*config, 0);
    ASSERT_TRUE(options.ok()) << options.status().ToString();
    options->ucx_tls = kGpuTls;
    options->cuda_device = 0;
    auto writer = CreateTransport("ucx", *options);
    if (!writer.ok()) GTEST_SKIP() << writer.status().message();
    if (!(*writer)->capabilities().gpu_memory) {
      GTEST_SKIP() << "the loaded UCX takes no GPU memory: " << (*writer)->capabilities().detail;
    }
    std::printf("ucx: %s\n", (*writer)->capabilities().detail.c_str());
    writer_ = std::move(*writer);
  }

  // Writes random ranges (1 B .. max_write) from `src` into a peer's `size` bytes of device
  // memory, flushes, and has the peer verify every byte.
  void WriteAndVerify(void* src, MemoryKind src_kind, uint64_t size, uint64_t seed,
                      uint64_t max_write) {
    auto peer = PeerProcess::Spawn({"ucx", kGpuTls, "", peer_device_}, size, 1);
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    auto src_region = writer_->Register(src, size, src_kind, "ucx.src");
    ASSERT_TRUE(src_region.ok()) << src_region.status().ToString();
    auto connection = writer_->Connect((*peer)->address(), DeadlineIn(30));
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    auto remote = writer_->Import(*connection, (*peer)->descriptor(), size);
    ASSERT_TRUE(remote.ok()) << remote.status().ToString();
    EXPECT_EQ((*peer)->descriptor().kind, MemoryKind::kCuda);
    const auto plan = testing::MakePlan(seed, size, size, max_write);
    std::vector<Write> writes;
    for (const auto& p : plan) {
      writes.push_back({*src_region, p.src_offset, *remote, p.dst_offset, p.length});
    }
    const Deadline deadline = DeadlineIn(120);
    const Status posted = writer_->PostWrites(*connection, writes, deadline);
    ASSERT_TRUE(posted.ok()) << posted.ToString();
    const Status flushed = writer_->Flush(*connection, deadline);
    ASSERT_TRUE(flushed.ok()) << flushed.ToString();
    auto reply = (*peer)->Command(StrCat("VERIFY ", seed, " ", size, " ", max_write));
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(*reply, "OK") << plan.size() << " writes";
    std::printf("ucx %s -> GPU %d: %zu writes (1 B .. %llu B) verified\n",
                src_kind == MemoryKind::kCuda ? "GPU 0" : "host", peer_device_, plan.size(),
                static_cast<unsigned long long>(max_write));
    ASSERT_TRUE(writer_->Disconnect(*connection).ok());
    ASSERT_TRUE(writer_->Deregister(*src_region).ok());
  }

  std::unique_ptr<Transport> writer_;
  int peer_device_ = 0;
};

TEST_F(UcxGpuTest, GpuToGpuRandomWritesVerified) {
  const uint64_t size = EnvBytes("WEIGHTSYNC_TEST_GPU_BYTES", 256ull << 20);
  for (const auto& [seed, max_write] :
       {std::pair<uint64_t, uint64_t>{31, 4096}, {32, 64ull << 20}}) {
    auto src = DeviceBuffer::Allocate(0, size);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    std::vector<uint8_t> host(size);
    testing::FillRandom(testing::SourceSeed(seed), host);
    ASSERT_TRUE(src->Upload(host).ok());
    WriteAndVerify(src->data(), MemoryKind::kCuda, size, seed, max_write);
  }
}

// A trainer that stages on the CPU writes into inference GPU memory.
TEST_F(UcxGpuTest, HostToGpuRandomWritesVerified) {
  const uint64_t size = 64ull << 20, seed = 33;
  std::vector<uint8_t> host(size);
  testing::FillRandom(testing::SourceSeed(seed), host);
  WriteAndVerify(host.data(), MemoryKind::kHost, size, seed, 8ull << 20);
}

}  // namespace
}  // namespace weightsync::transport
