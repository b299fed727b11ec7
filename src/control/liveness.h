// Liveness: heartbeats into the store, and a watcher that notices participants that died.
//
// A Heartbeat writes "beat <n>" to JobPrefix(job)/live/<role>/<rank> every
// control.heartbeat_interval as an *ephemeral* key, over its own store connection. Two ways to
// notice a dead participant follow:
//   - killed (kill -9, crash, machine gone): its connection closes, the store deletes the key, and
//     the next watcher scan reports "died (its store connection closed)";
//   - hung (SIGSTOP, deadlock, swapped out) with the connection still open: the value stops
//     changing, and after control.liveness_timeout the watcher reports "stopped heartbeating".
// Heartbeat::Stop() writes "stopped" (persistent) so a clean exit reads as "stopped", not "died".
// Heartbeat::Start also writes a persistent live/<role>/<rank>/seen once its first beat is stored,
// so a participant killed before any watcher scan caught its beat is still judged "died".
// The watcher measures staleness on its own clock (when it saw the value change), so participants'
// clocks never need to agree.
//
// Threading: each class runs one background thread with its own StoreClient. Heartbeat::Stop and
// the destructors join that thread; LivenessWatcher::Failures and CheckAlive may be called from
// any thread.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "control/participant.h"
#include "control/store_client.h"
#include "core/config.h"
#include "weightsync/status.h"

namespace weightsync::control {

struct LivenessOptions {
  double heartbeat_interval_s = DefaultSeconds("control.heartbeat_interval");
  double liveness_timeout_s = DefaultSeconds("control.liveness_timeout");
  // From control.heartbeat_interval and control.liveness_timeout; the timeout must exceed the
  // interval, or healthy participants would be reported dead between beats.
  static Result<LivenessOptions> FromConfig(const Config& config);
  Status Validate() const;
};

std::string LivenessKey(std::string_view job_id, ParticipantId id);

class Heartbeat {
 public:
  // Connects its own client, writes the first beat before returning, then beats in the background.
  static Result<std::unique_ptr<Heartbeat>> Start(const StoreClientOptions& store,
                                                  std::string job_id, ParticipantId me,
                                                  LivenessOptions options, Deadline deadline);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Stops beating and marks this participant "stopped"; idempotent.
  void Stop();

 private:
  Heartbeat(std::unique_ptr<StoreClient> client, std::string key, LivenessOptions options)
      : client_(std::move(client)), key_(std::move(key)), options_(options) {}
  void Run();

  std::unique_ptr<StoreClient> client_;
  const std::string key_;
  const LivenessOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  uint64_t beats_ = 0;
  std::thread thread_;
};

struct PeerFailure {
  ParticipantId peer;
  std::string reason;  // "died (its store connection closed)", "stopped heartbeating (...)", ...
  std::string ToString() const;  // "peer inference 1 died (...)"
};

class LivenessWatcher {
 public:
  // Connects its own client and scans the job's heartbeats until destroyed. The first scan runs
  // before Start returns.
  static Result<std::unique_ptr<LivenessWatcher>> Start(const StoreClientOptions& store,
                                                        std::string job_id, LivenessOptions options,
                                                        Deadline deadline);
  ~LivenessWatcher();
  LivenessWatcher(const LivenessWatcher&) = delete;
  LivenessWatcher& operator=(const LivenessWatcher&) = delete;

  // Participants seen heartbeating once that are now dead or stopped, as of the last scan.
  std::vector<PeerFailure> Failures() const;
  // kAborted naming the first failed participant among `peers` ("peer trainer 2 died ..."); OK
  // when none failed. Participants that never heartbeated are not judged: rounds and barriers
  // report them as missing at their deadline instead.
  Status CheckAlive(std::span<const ParticipantId> peers) const;

 private:
  struct PeerState {
    std::string value;
    Deadline last_change;
    bool present = false;
  };
  LivenessWatcher(std::unique_ptr<StoreClient> client, std::string job_id, LivenessOptions options)
      : client_(std::move(client)), job_id_(std::move(job_id)), options_(options) {}
  Status Scan();
  void Run();

  std::unique_ptr<StoreClient> client_;
  const std::string job_id_;
  const LivenessOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                     // guarded by mu_
  std::map<ParticipantId, PeerState> peers_;  // guarded by mu_
  std::vector<PeerFailure> failures_;         // guarded by mu_
  Deadline last_scan_ok_;                     // only touched by the scanning thread
  std::thread thread_;
};

}  // namespace weightsync::control
