// The transport side of an agent: which backend a rank uses, and the thread that progresses a
// target's transport while peers write into it.
//
// Threading: ProgressThread owns the only thread that touches its transport between Start and
// its destruction; the owner must not call the transport in that time (the Transport contract).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "agent/agent_options.h"
#include "transport/transport.h"

namespace weightsync::agent {

// "auto" -> cuda_ipc when the rank's tensors are on a GPU, ucx otherwise; names pass through.
std::string ResolveBackend(std::string_view configured, bool gpu_tensors);

// Creates `backend` for a rank; kUnavailable with the backend's reason when it cannot run here.
Result<std::unique_ptr<transport::Transport>> OpenTransport(const AgentOptions& options,
                                                            const std::string& backend,
                                                            int32_t rank, int cuda_device);

// Calls Progress() until destroyed: continuously while active (a push is writing into this
// rank), every millisecond otherwise (connection set-up messages still need answers).
class ProgressThread {
 public:
  explicit ProgressThread(transport::Transport& transport);
  ~ProgressThread();
  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;

  void SetActive(bool active) { active_.store(active, std::memory_order_relaxed); }

 private:
  transport::Transport& transport_;
  std::atomic<bool> active_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace weightsync::agent
