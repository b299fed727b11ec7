#include "agent/agent_transport.h"

#include <chrono>

#include "control/socket.h"

namespace weightsync::agent {

std::string ResolveBackend(std::string_view configured, bool gpu_tensors) {
  if (configured != "auto") return std::string(configured);
  return gpu_tensors ? "cuda_ipc" : "ucx";
}

Result<std::unique_ptr<transport::Transport>> OpenTransport(const AgentOptions& options,
                                                            const std::string& backend,
                                                            int32_t rank, int cuda_device) {
  transport::TransportOptions t = options.transport_options;
  t.self = transport::CurrentProcessIdentity(rank);
  t.cuda_device = cuda_device;
  // Network listeners stay on the interface that reaches the store (loopback for a one-host job).
  if (auto store = control::ParseHostPort(options.store.address); store.ok()) {
    t.rendezvous_host = store->host;
  }
  Result<std::unique_ptr<transport::Transport>> transport = transport::CreateTransport(backend, t);
  if (!transport.ok()) {
    return transport.status().WithContext(StrCat("transport ", backend, " for rank ", rank));
  }
  return transport;
}

ProgressThread::ProgressThread(transport::Transport& transport) : transport_(transport) {
  thread_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) {
      transport_.Progress();
      if (active_.load(std::memory_order_relaxed)) {
        std::this_thread::yield();  // machines running many ranks on few cores
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  });
}

ProgressThread::~ProgressThread() {
  stop_.store(true);
  thread_.join();
}

}  // namespace weightsync::agent
