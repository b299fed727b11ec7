// Passing file descriptors between processes of one host over a Unix socket (SCM_RIGHTS), for
// cuMem POSIX-file-descriptor handles (as NCCL's ncclIpcSocket does): a descriptor number means
// nothing in another process, so the exporter serves the real fd on request.
//
// FdServer listens on an abstract-namespace socket (no file to clean up) and answers requests
// "key -> fd" from processes of the same user only (SO_PEERCRED).
//
// Threading: FdServer owns one accept thread; Publish/Withdraw are thread-safe. FetchFd is a
// plain blocking call with a deadline.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "transport/transport.h"

namespace weightsync::transport {

class FdServer {
 public:
  // Listens on "\0<name>".
  static Result<std::unique_ptr<FdServer>> Start(std::string name);
  ~FdServer();

  const std::string& name() const { return name_; }
  // The server keeps its own dup of fd until Withdraw.
  Status Publish(uint64_t key, int fd);
  void Withdraw(uint64_t key);

 private:
  FdServer(std::string name, int listen_fd);
  void Serve();

  std::string name_;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<uint64_t, int> fds_;
  std::thread thread_;
};

// Asks the server `name` for `key`; returns a new fd owned by the caller.
Result<int> FetchFd(const std::string& name, uint64_t key, Deadline deadline);

}  // namespace weightsync::transport
