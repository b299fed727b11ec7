// Where the ucx transport listens. UCX's TCP transport opens a listening socket on every network
// interface it uses; a job must not leave one on an interface its peers do not need. A job whose
// store (TransportOptions::rendezvous_host) is on loopback has every peer on this host: every
// listener stays on loopback.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "transport/net_interface.h"
#include "transport/transport.h"

namespace weightsync::transport {
namespace {

// The socket inodes this process holds.
std::set<std::string> OwnSocketInodes() {
  std::set<std::string> inodes;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return inodes;
  while (dirent* entry = ::readdir(dir)) {
    char target[256] = {};
    std::string path = std::string("/proc/self/fd/") + entry->d_name;
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    std::string link(target, n > 0 ? static_cast<size_t>(n) : 0);
    if (link.rfind("socket:[", 0) == 0) inodes.insert(link.substr(8, link.size() - 9));
  }
  ::closedir(dir);
  return inodes;
}

// The local addresses (kernel hex, "0100007F:1F90") of this process's listening TCP sockets.
std::vector<std::string> OwnListeners() {
  const std::set<std::string> mine = OwnSocketInodes();
  std::vector<std::string> listeners;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // column names
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state == "0A" && mine.count(inode) > 0) listeners.push_back(local);  // 0A: LISTEN
    }
  }
  return listeners;
}

bool IsLoopback(const std::string& hex_address) {
  const std::string host = hex_address.substr(0, hex_address.find(':'));
  if (host.size() == 8) return host.substr(6, 2) == "7F";  // 127.x.x.x, little-endian
  return host == "00000000000000000000000001000000";       // ::1
}

TEST(UcxListen, ASingleHostJobListensOnLoopbackOnly) {
  TransportOptions options;
  options.rendezvous_host = "127.0.0.1";
  auto transport = CreateTransport("ucx", options);
  if (!transport.ok()) GTEST_SKIP() << transport.status().ToString();
  ASSERT_TRUE((*transport)->LocalAddress().ok());
  const std::vector<std::string> listeners = OwnListeners();
  for (const std::string& address : listeners) {
    EXPECT_TRUE(IsLoopback(address)) << "a listener on " << address << " (kernel hex)";
  }
  EXPECT_NE((*transport)->capabilities().detail.find("net devices lo"), std::string::npos)
      << (*transport)->capabilities().detail;
}

}  // namespace
}  // namespace weightsync::transport
