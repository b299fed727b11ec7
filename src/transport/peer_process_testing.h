// PeerProcess: the target side of multi-process transport tests, transport_test_peer fork/exec'd
// with one end of a socketpair (see transport_test_peer.cc for its commands). Test-only code.
//
// Threading: one test thread drives a PeerProcess.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "transport/socket_channel.h"
#include "transport/transport.h"

namespace weightsync::transport::testing {

struct PeerSpec {
  std::string backend, tls, net_devices;
  int cuda_device = -1;  // >= 0: the peer's region is device memory on this GPU
  // > 0: that memory is cuMem allocations of this many bytes shareable by fd (PyTorch's
  // expandable segments), and the region starts 4 KiB before the end of the first one.
  uint64_t cuda_chunk = 0;
};

// The target process: transport_test_peer, fork/exec'd with one end of a socketpair.
class PeerProcess {
 public:
  static Result<std::unique_ptr<PeerProcess>> Spawn(const PeerSpec& c, uint64_t bytes, int rank) {
    WS_ASSIGN_OR_RETURN(auto pair, MakeChannelPair());
    auto peer = std::make_unique<PeerProcess>();
    const int child_fd = pair.second.fd();
    const pid_t pid = fork();
    if (pid < 0) return Unavailable("fork failed");
    if (pid == 0) {
      fcntl(child_fd, F_SETFD, 0);  // keep the child's end across exec
      const std::string fd = std::to_string(child_fd), size = std::to_string(bytes),
                        r = std::to_string(rank),
                        memory = c.cuda_device < 0 ? "host"
                                 : c.cuda_chunk == 0
                                     ? StrCat("cuda:", c.cuda_device)
                                     : StrCat("cuda:", c.cuda_device, "/", c.cuda_chunk);
      // The build tree may have moved (GPU hosts get a copy): the environment can point elsewhere.
      const char* program = std::getenv("WEIGHTSYNC_TRANSPORT_PEER");
      if (!program) program = WEIGHTSYNC_TRANSPORT_PEER;
      execl(program, program, fd.c_str(), c.backend.c_str(), c.tls.empty() ? "-" : c.tls.c_str(),
            c.net_devices.empty() ? "-" : c.net_devices.c_str(), size.c_str(), r.c_str(),
            memory.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    peer->pid_ = pid;
    peer->channel_ = std::move(pair.first);
    WS_ASSIGN_OR_RETURN(auto address_bytes, peer->channel_.Receive(DeadlineIn(30)));
    WS_ASSIGN_OR_RETURN(peer->address_, PeerAddress::Deserialize(address_bytes));
    WS_ASSIGN_OR_RETURN(auto descriptor_bytes, peer->channel_.Receive(DeadlineIn(30)));
    WS_ASSIGN_OR_RETURN(peer->descriptor_, RegionDescriptor::Deserialize(descriptor_bytes));
    return peer;
  }
  ~PeerProcess() {
    if (pid_ <= 0) return;
    if (channel_.SendText("EXIT").ok()) {
      for (int i = 0; i < 500; ++i) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) return;
        usleep(10000);
      }
    }
    Kill();
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  Result<std::string> Command(const std::string& text) {
    WS_RETURN_IF_ERROR(channel_.SendText(text));
    return channel_.ReceiveText(DeadlineIn(120));
  }
  pid_t pid() const { return pid_; }
  const PeerAddress& address() const { return address_; }
  const RegionDescriptor& descriptor() const { return descriptor_; }

 private:
  pid_t pid_ = -1;
  SocketChannel channel_;
  PeerAddress address_;
  RegionDescriptor descriptor_;
};

}  // namespace weightsync::transport::testing
