// The target process of the multi-process transport tests (fork/exec'd by transport_test).
//
//   transport_test_peer <channel fd> <backend> <ucx_tls> <ucx_net_devices> <bytes> <rank> <memory>
//
// <memory> is "host", "cuda:N" (device memory on GPU N; builds with cuda.h only) or
// "cuda:N/CHUNK" (on GPU N, cuMem allocations of CHUNK bytes shareable by fd, the region starting
// 4 KiB before the end of the first, so it spans allocations from inside one).
// Transport rows of the config table come from the environment (WEIGHTSYNC_TRANSPORT_*).
// Registers a buffer of <bytes> filled from testing::kInitialSeed, sends its PeerAddress and
// RegionDescriptor over the channel, then progresses the transport while answering commands:
//   "VERIFY <seed> <src_size> <max_write>": rebuilds the expected image and compares every byte;
//       replies "OK" or "MISMATCH ..." and restores the initial contents.
//   "EXIT": deregisters and exits 0.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "transport/socket_channel.h"
#include "transport/test_plan.h"
#include "transport/transport.h"
#ifdef WEIGHTSYNC_HAVE_CUDA_H
#include "transport/device_buffer_testing.h"
#endif

using namespace weightsync;
using namespace weightsync::transport;

namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "transport_test_peer %d: %s\n", getpid(), status.ToString().c_str());
  return 1;
}

// The region writers target: host memory, or device memory mirrored by a host copy `host`.
class TargetMemory {
 public:
  static Result<TargetMemory> Make(const std::string& memory, uint64_t bytes) {
    TargetMemory target;
    target.host.resize(bytes);
    testing::FillRandom(testing::kInitialSeed, target.host);
    if (memory == "host") return target;
#ifdef WEIGHTSYNC_HAVE_CUDA_H
    if (memory.starts_with("cuda:")) {
      target.device_index = std::atoi(memory.c_str() + 5);
      const size_t slash = memory.find('/');
      const uint64_t chunk =
          slash == std::string::npos ? 0 : std::strtoull(memory.c_str() + slash + 1, nullptr, 10);
      Result<testing::DeviceBuffer> buffer =
          chunk == 0
              ? testing::DeviceBuffer::Allocate(target.device_index, bytes)
              : testing::DeviceBuffer::AllocateChunked(target.device_index, bytes + chunk, chunk,
                                                       CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
      if (!buffer.ok()) return buffer.status();
      if (chunk > 0) target.offset = buffer->chunk() - 4096;
      target.device = std::make_unique<testing::DeviceBuffer>(std::move(*buffer));
      WS_RETURN_IF_ERROR(target.device->Upload(target.host, target.offset));
      return target;
    }
#endif
    return InvalidArgument("memory '", memory, "' unsupported by this build");
  }
  void* data() { return device ? static_cast<uint8_t*>(device->data()) + offset : host.data(); }
  MemoryKind kind() const { return device ? MemoryKind::kCuda : MemoryKind::kHost; }
  Status Pull() { return device ? device->Download(host, offset) : Status::Ok(); }
  Status Push() { return device ? device->Upload(host, offset) : Status::Ok(); }

  std::vector<uint8_t> host;
  int device_index = -1;
  uint64_t offset = 0;  // of the region in the device buffer
#ifdef WEIGHTSYNC_HAVE_CUDA_H
  std::unique_ptr<testing::DeviceBuffer> device;
#else
  std::unique_ptr<int> device;  // never set without cuda.h
#endif
};

std::string Verify(std::istringstream& args, std::vector<uint8_t>& dst) {
  uint64_t seed = 0, src_size = 0, max_write = 0;
  args >> seed >> src_size >> max_write;
  std::vector<uint8_t> src(src_size), expected(dst.size());
  testing::FillRandom(testing::SourceSeed(seed), src);
  testing::FillRandom(testing::kInitialSeed, expected);
  const auto plan = testing::MakePlan(seed, src_size, dst.size(), max_write);
  testing::ApplyPlan(plan, src, expected);
  std::string reply = "OK";
  for (size_t i = 0; i < dst.size(); ++i) {
    if (dst[i] != expected[i]) {
      reply = StrCat("MISMATCH at byte ", i, ": expected ", int{expected[i]}, ", got ", int{dst[i]},
                     " (", plan.size(), " writes)");
      break;
    }
  }
  testing::FillRandom(testing::kInitialSeed, dst);
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s fd backend tls net_devices bytes rank memory\n", argv[0]);
    return 2;
  }
  SocketChannel channel(std::atoi(argv[1]));
  // The environment's transport.* rows (WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR, say) as the writer
  // sees them; the arguments override the rest.
  auto config = Config::FromEnvironment();
  if (!config.ok()) return Fail(config.status());
  auto from_config = OptionsFromConfig(*config, std::atoi(argv[6]));
  if (!from_config.ok()) return Fail(from_config.status());
  TransportOptions options = *from_config;
  options.ucx_tls = std::string(argv[3]) == "-" ? "" : argv[3];
  options.ucx_net_devices = std::string(argv[4]) == "-" ? "" : argv[4];
  auto target = TargetMemory::Make(argv[7], std::strtoull(argv[5], nullptr, 10));
  if (!target.ok()) return Fail(target.status());
  if (target->device_index >= 0) options.cuda_device = target->device_index;
  auto transport = CreateTransport(argv[2], options);
  if (!transport.ok()) return Fail(transport.status());
  std::vector<uint8_t>& dst = target->host;
  auto region = (*transport)->Register(target->data(), dst.size(), target->kind(), "peer.dst");
  if (!region.ok()) return Fail(region.status());
  auto address = (*transport)->LocalAddress();
  if (!address.ok()) return Fail(address.status());
  auto descriptor = (*transport)->Export(*region);
  if (!descriptor.ok()) return Fail(descriptor.status());
  if (auto s = channel.Send(address->Serialize()); !s.ok()) return Fail(s);
  if (auto s = channel.Send(descriptor->Serialize()); !s.ok()) return Fail(s);
  for (uint64_t spin = 0;; ++spin) {
    (*transport)->Progress();
    // A poll per iteration would dominate progress over TCP; every 64th is plenty for commands.
    if (spin % 64 != 0 || !channel.Readable()) continue;
    auto command = channel.ReceiveText(DeadlineIn(10));
    if (!command.ok()) return Fail(command.status());
    std::istringstream args(*command);
    std::string verb;
    args >> verb;
    if (verb == "EXIT") break;
    std::string reply = "UNKNOWN " + verb;
    if (verb == "VERIFY") {
      if (auto s = target->Pull(); !s.ok()) return Fail(s);
      reply = Verify(args, dst);
      if (auto s = target->Push(); !s.ok()) return Fail(s);
    }
    if (auto s = channel.SendText(reply); !s.ok()) return Fail(s);
  }
  if (auto s = (*transport)->Deregister(*region); !s.ok()) return Fail(s);
  return 0;
}
