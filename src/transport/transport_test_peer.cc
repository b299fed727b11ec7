// The target process of the multi-process transport tests (fork/exec'd by transport_test).
//
//   transport_test_peer <channel fd> <backend> <ucx_tls> <ucx_net_devices> <bytes> <rank>
//
// Registers a buffer of <bytes> filled from testing::kInitialSeed, sends its PeerAddress and
// RegionDescriptor over the channel, then progresses the transport while answering commands:
//   "VERIFY <seed> <src_size> <max_write>": rebuilds the expected image and compares every byte;
//       replies "OK" or "MISMATCH ..." and restores the initial contents.
//   "EXIT": deregisters and exits 0.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "transport/socket_channel.h"
#include "transport/test_plan.h"
#include "transport/transport.h"

using namespace weightsync;
using namespace weightsync::transport;

namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "transport_test_peer %d: %s\n", getpid(), status.ToString().c_str());
  return 1;
}

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
      reply = StrCat("MISMATCH at byte ", i, ": expected ", int{expected[i]}, ", got ",
                     int{dst[i]}, " (", plan.size(), " writes)");
      break;
    }
  }
  testing::FillRandom(testing::kInitialSeed, dst);
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s fd backend tls net_devices bytes rank\n", argv[0]);
    return 2;
  }
  SocketChannel channel(std::atoi(argv[1]));
  TransportOptions options;
  options.self = CurrentProcessIdentity(std::atoi(argv[6]));
  options.ucx_tls = std::string(argv[3]) == "-" ? "" : argv[3];
  options.ucx_net_devices = std::string(argv[4]) == "-" ? "" : argv[4];
  auto transport = CreateTransport(argv[2], options);
  if (!transport.ok()) return Fail(transport.status());
  std::vector<uint8_t> dst(std::strtoull(argv[5], nullptr, 10));
  testing::FillRandom(testing::kInitialSeed, dst);
  auto region = (*transport)->Register(dst.data(), dst.size(), MemoryKind::kHost, "peer.dst");
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
    std::string reply = verb == "VERIFY" ? Verify(args, dst) : "UNKNOWN " + verb;
    if (auto s = channel.SendText(reply); !s.ok()) return Fail(s);
  }
  if (auto s = (*transport)->Deregister(*region); !s.ok()) return Fail(s);
  return 0;
}
