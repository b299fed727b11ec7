// Passing file descriptors between processes of one host over a Unix socket (SCM_RIGHTS), for
// cuMem POSIX-file-descriptor handles (as NCCL's ncclIpcSocket does): a descriptor number means
// nothing in another process, so the exporter serves the real fd on request.
//
// FdServer listens on an abstract-namespace socket (no file to clean up) and answers requests
// "key -> fd" from processes of the same user only (SO_PEERCRED). It opens each fd when asked
// and closes it once sent, so it holds no descriptors of its own: a GPU of PyTorch expandable
// segments is thousands of cuMem handles, past the usual limit of 1024 open files.
//
// Threading: FdServer owns one accept thread, which runs the openers with the server's lock
// held (so Withdraw returns only once no opener of that key runs); Publish/Withdraw are
// thread-safe. FetchFd is a plain blocking call with a deadline.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
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

  // Opens a new descriptor for one request; the server sends it and closes it.
  using Opener = std::function<Result<int>()>;

  const std::string& name() const { return name_; }
  void Publish(uint64_t key, Opener open);
  void Withdraw(uint64_t key);

 private:
  FdServer(std::string name, int listen_fd);
  void Serve();

  std::string name_;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<uint64_t, Opener> openers_;
  std::thread thread_;
};

// Asks the server `name` for `key`; returns a new fd owned by the caller.
Result<int> FetchFd(const std::string& name, uint64_t key, Deadline deadline);

}  // namespace weightsync::transport
