// cuda_ipc on real GPUs (run on GPU hosts by bench/gpu/run.sh; skips, saying why, elsewhere):
// a second process registers device memory on another GPU (the same one on a 1-GPU host), this
// process writes random ranges into it from its own device memory through the cuda_ipc backend,
// and the peer checks every byte. Then one timed comparison: whole-buffer cuda_ipc writes against
// an in-process device-to-device copy of the same bytes between the same two GPUs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "transport/device_buffer_testing.h"
#include "transport/peer_process_testing.h"
#include "transport/staging_pool.h"
#include "transport/test_plan.h"

namespace weightsync::transport {
namespace {

using testing::DeviceBuffer;
using testing::EnvBytes;
using testing::PeerProcess;

class CudaIpcGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto api = LoadCudaApi();
    if (!api.ok()) GTEST_SKIP() << api.status().message();
    api_ = *api;
    int count = 0;
    if (api_->init(0) != CUDA_SUCCESS || api_->device_get_count(&count) != CUDA_SUCCESS ||
        count < 1) {
      GTEST_SKIP() << "no CUDA device on this host";
    }
    peer_device_ = count > 1 ? 1 : 0;
  }
  Result<std::unique_ptr<Transport>> Writer() {
    TransportOptions options;
    options.self = CurrentProcessIdentity(0);
    options.cuda_device = 0;
    return CreateTransport("cuda_ipc", options);
  }
  // Fills `src` from SourceSeed(seed), writes MakePlan(seed) from it into a fresh peer of `spec`
  // holding `size` bytes (default: all of src), runs `after_post` once the writes are posted,
  // flushes, and has the peer check every byte.
  void PushAndVerify(DeviceBuffer& src, const testing::PeerSpec& spec, uint64_t seed,
                     uint64_t max_write, uint64_t size = 0,
                     const std::function<void(Transport&, PeerId)>& after_post = {}) {
    if (size == 0) size = src.size();
    std::vector<uint8_t> host(size);
    testing::FillRandom(testing::SourceSeed(seed), host);
    ASSERT_TRUE(src.Upload(host).ok());
    auto writer = Writer();
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    auto peer = PeerProcess::Spawn(spec, size, 1);
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    auto src_region = (*writer)->Register(src.data(), size, MemoryKind::kCuda, "gpu.src");
    ASSERT_TRUE(src_region.ok()) << src_region.status().ToString();
    auto connection = (*writer)->Connect((*peer)->address(), DeadlineIn(30));
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    auto remote = (*writer)->Import(*connection, (*peer)->descriptor(), size);
    ASSERT_TRUE(remote.ok()) << remote.status().ToString();
    const auto plan = testing::MakePlan(seed, size, size, max_write);
    std::vector<Write> writes;
    for (const auto& p : plan)
      writes.push_back({*src_region, p.src_offset, *remote, p.dst_offset, p.length});
    const Deadline deadline = DeadlineIn(120);
    ASSERT_TRUE((*writer)->PostWrites(*connection, writes, deadline).ok());
    if (after_post) {
      after_post(**writer, *connection);
      if (HasFatalFailure()) return;
    }
    ASSERT_TRUE((*writer)->Flush(*connection, deadline).ok());
    auto reply = (*peer)->Command(StrCat("VERIFY ", seed, " ", size, " ", max_write));
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(*reply, "OK") << plan.size() << " writes";
    std::printf("cuda_ipc: %zu writes (1 B .. %llu MiB) GPU 0 -> GPU %d verified%s\n", plan.size(),
                static_cast<unsigned long long>(max_write >> 20), spec.cuda_device,
                spec.cuda_chunk ? " (cuMem allocations shared by fd)" : "");
  }
  const CudaApi* api_ = nullptr;
  int peer_device_ = 0;
};

TEST_F(CudaIpcGpuTest, MultiProcessRandomWritesVerified) {
  const uint64_t size = EnvBytes("WEIGHTSYNC_TEST_GPU_BYTES", 256ull << 20);
  auto src = DeviceBuffer::Allocate(0, size);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  PushAndVerify(*src, {"cuda_ipc", "", "", peer_device_}, 11, 64ull << 20);
}

// PyTorch's expandable segments map one cuMem allocation (fd handle type) per 2 or 20 MiB, so a
// tensor's bytes span several: source and destination regions here span dozens, the destination
// starting 4 KiB before the end of one.
TEST_F(CudaIpcGpuTest, WritesAcrossTheCuMemAllocationsOfExpandableSegments) {
  const uint64_t size = (96ull << 20) + 12345;
  auto src =
      DeviceBuffer::AllocateChunked(0, size, 20ull << 20, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  testing::PeerSpec spec{"cuda_ipc", "", "", peer_device_};
  spec.cuda_chunk = 2ull << 20;
  PushAndVerify(*src, spec, 17, 8ull << 20, size);
}

// Memory no other process can map is refused at registration, naming the region and the way out.
TEST_F(CudaIpcGpuTest, RefusesMemoryThatCannotBeShared) {
  auto writer = Writer();
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  // vLLM's sleep-mode allocator: cuMemCreate without a shareable handle type.
  auto unshareable =
      DeviceBuffer::AllocateChunked(0, 8ull << 20, 2ull << 20, CU_MEM_HANDLE_TYPE_NONE);
  ASSERT_TRUE(unshareable.ok()) << unshareable.status().ToString();
  auto refused =
      (*writer)->Register(unshareable->data(), 8ull << 20, MemoryKind::kCuda, "sleep.weights");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("'sleep.weights'"), std::string::npos);
  EXPECT_NE(refused.status().message().find("POSIX fd"), std::string::npos)
      << refused.status().ToString();
  // A region running past its cudaMalloc allocation.
  auto small = DeviceBuffer::Allocate(0, 2ull << 20);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  auto past = (*writer)->Register(small->data(), 4ull << 20, MemoryKind::kCuda, "too.long");
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.status().message().find("spans more than one device allocation"),
            std::string::npos)
      << past.status().ToString();
}

// A staging ring's reuse on the GPU: once WaitMark returns, the copies before the mark have read
// their source, so overwriting it (here: uploading zeros) must not change what the peer holds.
TEST_F(CudaIpcGpuTest, SourceBeforeAMarkMayBeReused) {
  auto src = DeviceBuffer::Allocate(0, 256ull << 20);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  PushAndVerify(*src, {"cuda_ipc", "", "", peer_device_}, 13, 16ull << 20, 0,
                [&](Transport& writer, PeerId peer) {
                  auto mark = writer.Mark(peer);
                  ASSERT_TRUE(mark.ok()) << mark.status().ToString();
                  ASSERT_TRUE(writer.WaitMark(peer, *mark, DeadlineIn(60)).ok());
                  ASSERT_TRUE(src->Upload(std::vector<uint8_t>(src->size(), 0)).ok());
                });
}

// A GPU staging pool (plain cuMemAlloc, registered once) feeds cuda_ipc writes from its slots.
TEST_F(CudaIpcGpuTest, GpuStagingPoolSlotsAreWritable) {
  const uint64_t size = 64ull << 20;
  auto writer = Writer();
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto pool = StagingPool::Create(**writer, PoolMemory::kCuda, 2 * size, "gpu.staging", 0);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  // cuda_ipc writes device memory only; a host pool is checked on the local transport.
  TransportOptions local_options;
  local_options.self = CurrentProcessIdentity(0);
  auto local = CreateTransport("local", local_options);
  ASSERT_TRUE(local.ok());
  auto pinned = StagingPool::Create(**local, PoolMemory::kHost, 1 << 20, "host.staging", 0);
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_TRUE((*pinned)->stats().pinned) << "host pools are pinned when a GPU is present";
  auto first = (*pool)->Allocate(1000, "padding");  // the slot we use starts at a non-zero offset
  auto slot = (*pool)->Allocate(size, "slot");
  ASSERT_TRUE(first.ok() && slot.ok());
  std::vector<uint8_t> host(size);
  const uint64_t seed = 5;
  testing::FillRandom(testing::SourceSeed(seed), host);
  auto api = LoadCudaApi();
  ASSERT_EQ((*api)->memcpy_htod(reinterpret_cast<CUdeviceptr>(slot->data), host.data(), size),
            CUDA_SUCCESS);
  auto peer = PeerProcess::Spawn({"cuda_ipc", "", "", peer_device_}, size, 1);
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto connection = (*writer)->Connect((*peer)->address(), DeadlineIn(30));
  ASSERT_TRUE(connection.ok()) << connection.status().ToString();
  auto remote = (*writer)->Import(*connection, (*peer)->descriptor(), size);
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  const auto plan = testing::MakePlan(seed, size, size, 8ull << 20);
  std::vector<Write> writes;
  for (const auto& p : plan) {
    writes.push_back({slot->region, slot->offset + p.src_offset, *remote, p.dst_offset, p.length});
  }
  ASSERT_TRUE((*writer)->PostWrites(*connection, writes, DeadlineIn(60)).ok());
  ASSERT_TRUE((*writer)->Flush(*connection, DeadlineIn(60)).ok());
  auto reply = (*peer)->Command(StrCat("VERIFY ", seed, " ", size, " ", 8ull << 20));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, "OK");
  EXPECT_EQ((*pool)->stats().peak_in_use, (*pool)->stats().in_use);
  ASSERT_TRUE((*pool)->Free(*slot).ok());
  ASSERT_TRUE((*pool)->Free(*first).ok());
}

// Writes up to transport.cuda_small_write_bytes go through the batched kernel: random lengths
// from 1 byte to the threshold at unaligned source and destination offsets (so every word width
// of the kernel runs), enough of them to fill several lists, checked byte for byte by the peer.
TEST_F(CudaIpcGpuTest, SmallWritesByBatchedKernelBitExact) {
  struct Case {
    uint64_t size, max_write;
  };
  // Tiny writes: ~10^5 of them, many launches and every list slot reused. Threshold-sized ones:
  // writes split into chunks, mixed word widths.
  for (const Case c : {Case{8ull << 20, 64}, Case{256ull << 20, 256ull << 10}}) {
    const uint64_t seed = 21 + c.max_write;
    auto src = DeviceBuffer::Allocate(0, c.size);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    std::vector<uint8_t> host(c.size);
    testing::FillRandom(testing::SourceSeed(seed), host);
    ASSERT_TRUE(src->Upload(host).ok());
    TransportOptions options;
    options.self = CurrentProcessIdentity(0);
    options.cuda_small_write_bytes = 256ull << 10;
    auto writer = CreateTransport("cuda_ipc", options);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
#ifdef WEIGHTSYNC_HAVE_BATCHED_COPY
    // Built with nvcc: the kernel must be in use, or this test would only check copy engines.
    ASSERT_NE((*writer)->capabilities().detail.find("batched kernel"), std::string::npos)
        << (*writer)->capabilities().detail;
#else
    GTEST_SKIP() << "built without nvcc: no batched kernel (" << (*writer)->capabilities().detail
                 << ")";
#endif
    auto peer = PeerProcess::Spawn({"cuda_ipc", "", "", peer_device_}, c.size, 1);
    ASSERT_TRUE(peer.ok()) << peer.status().ToString();
    auto src_region = (*writer)->Register(src->data(), c.size, MemoryKind::kCuda, "gpu.src");
    ASSERT_TRUE(src_region.ok()) << src_region.status().ToString();
    auto connection = (*writer)->Connect((*peer)->address(), DeadlineIn(30));
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    auto remote = (*writer)->Import(*connection, (*peer)->descriptor(), c.size);
    ASSERT_TRUE(remote.ok()) << remote.status().ToString();
    const auto plan = testing::MakePlan(seed, c.size, c.size, c.max_write);
    std::vector<Write> writes;
    for (const auto& p : plan) {
      writes.push_back({*src_region, p.src_offset, *remote, p.dst_offset, p.length});
    }
    const Deadline deadline = DeadlineIn(120);
    Status posted = (*writer)->PostWrites(*connection, writes, deadline);
    ASSERT_TRUE(posted.ok()) << posted.ToString();
    Status flushed = (*writer)->Flush(*connection, deadline);
    ASSERT_TRUE(flushed.ok()) << flushed.ToString();
    auto reply = (*peer)->Command(StrCat("VERIFY ", seed, " ", c.size, " ", c.max_write));
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(*reply, "OK") << plan.size() << " writes of 1 .. " << c.max_write << " bytes";
    std::printf(
        "cuda_ipc batched kernel: %zu writes (1 B .. %llu B, unaligned) GPU 0 -> GPU %d "
        "verified\n",
        plan.size(), static_cast<unsigned long long>(c.max_write), peer_device_);
  }
}

TEST_F(CudaIpcGpuTest, ThroughputBesideDeviceToDeviceCopy) {
  const uint64_t size = EnvBytes("WEIGHTSYNC_TEST_GPU_BENCH_BYTES", 1ull << 30);
  const int iters = 20;
  auto src = DeviceBuffer::Allocate(0, size);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto writer = Writer();
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto peer = PeerProcess::Spawn({"cuda_ipc", "", "", peer_device_}, size, 1);
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  auto src_region = (*writer)->Register(src->data(), size, MemoryKind::kCuda, "gpu.src");
  auto connection = (*writer)->Connect((*peer)->address(), DeadlineIn(30));
  ASSERT_TRUE(src_region.ok() && connection.ok());
  auto remote = (*writer)->Import(*connection, (*peer)->descriptor(), size);
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  const std::vector<Write> one = {{*src_region, 0, *remote, 0, size}};
  auto time_it = [&](auto&& body) {
    body();  // warm-up
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) body();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return static_cast<double>(size) * iters / s / 1e9;
  };
  const double ipc_gbps = time_it([&] {
    ASSERT_TRUE((*writer)->PostWrites(*connection, one, DeadlineIn(60)).ok());
    ASSERT_TRUE((*writer)->Flush(*connection, DeadlineIn(60)).ok());
  });

  // Baseline (cudaMemcpyPeer's path): the same bytes copied by this process between buffers on
  // the same two GPUs, with peer access enabled.
  auto local_dst = DeviceBuffer::Allocate(peer_device_, size);
  ASSERT_TRUE(local_dst.ok());
  auto source = DeviceBuffer::Allocate(0, size);  // re-makes device 0's context current
  ASSERT_TRUE(source.ok());
  if (peer_device_ != 0) {
    Status peer_access = source->EnablePeerAccess(peer_device_);
    ASSERT_TRUE(peer_access.ok()) << peer_access.ToString();
  }
  const double copy_gbps = time_it([&] {
    ASSERT_EQ(api_->memcpy_dtod_async(reinterpret_cast<CUdeviceptr>(local_dst->data()),
                                      reinterpret_cast<CUdeviceptr>(source->data()), size, nullptr),
              CUDA_SUCCESS);
    ASSERT_EQ(api_->stream_synchronize(nullptr), CUDA_SUCCESS);
  });
  std::printf(
      "cuda_ipc write GPU 0 -> GPU %d, %llu MiB x %d: %.1f GB/s; in-process peer copy "
      "(cuMemcpyDtoD, peer access on) of the same bytes: %.1f GB/s; ratio %.3f\n",
      peer_device_, static_cast<unsigned long long>(size >> 20), iters, ipc_gbps, copy_gbps,
      ipc_gbps / copy_gbps);
  RecordProperty("cuda_ipc_gbps", std::to_string(ipc_gbps));
  RecordProperty("dtod_gbps", std::to_string(copy_gbps));
}

}  // namespace
}  // namespace weightsync::transport
