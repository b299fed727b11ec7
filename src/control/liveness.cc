#include "control/liveness.h"

#include <algorithm>

#include "core/log.h"

namespace weightsync::control {
namespace {

constexpr std::string_view kStoppedValue = "stopped";
// A persistent key beside each ephemeral heartbeat, written once the first beat is in the store.
// It lets a watcher judge a participant that died before the watcher's first scan caught its
// heartbeat (a process killed within milliseconds of joining would otherwise never be judged,
// and everyone waiting for it would wait for the deadline).
constexpr std::string_view kSeenSuffix = "/seen";

// Store calls made by the background threads: short, so Stop() never waits long for them.
Deadline CallDeadline(const LivenessOptions& options) {
  return DeadlineIn(std::clamp(options.heartbeat_interval_s, 0.5, 5.0));
}

std::chrono::duration<double> ScanInterval(const LivenessOptions& options) {
  return std::chrono::duration<double>(
      std::max(0.01, std::min(options.heartbeat_interval_s, options.liveness_timeout_s / 4)));
}

}  // namespace

Result<LivenessOptions> LivenessOptions::FromConfig(const Config& config) {
  LivenessOptions options;
  WS_ASSIGN_OR_RETURN(options.heartbeat_interval_s,
                      config.GetSeconds("control.heartbeat_interval"));
  WS_ASSIGN_OR_RETURN(options.liveness_timeout_s, config.GetSeconds("control.liveness_timeout"));
  WS_RETURN_IF_ERROR(options.Validate());
  return options;
}

Status LivenessOptions::Validate() const {
  if (!(heartbeat_interval_s > 0)) {
    return InvalidArgument("control.heartbeat_interval must be positive");
  }
  if (!(liveness_timeout_s > heartbeat_interval_s)) {
    return InvalidArgument("control.liveness_timeout (", liveness_timeout_s,
                           " s) must exceed control.heartbeat_interval (", heartbeat_interval_s,
                           " s)");
  }
  return Status::Ok();
}

std::string LivenessKey(std::string_view job_id, ParticipantId id) {
  return StrCat(JobPrefix(job_id), "live/", ParticipantKey(id));
}

std::string PeerFailure::ToString() const { return StrCat("peer ", peer.ToString(), " ", reason); }

Result<std::unique_ptr<Heartbeat>> Heartbeat::Start(const StoreClientOptions& store,
                                                    std::string job_id, ParticipantId me,
                                                    LivenessOptions options, Deadline deadline) {
  WS_RETURN_IF_ERROR(ValidateName("job id", job_id));
  WS_RETURN_IF_ERROR(options.Validate());
  WS_ASSIGN_OR_RETURN(auto client, StoreClient::Connect(store, deadline));
  std::unique_ptr<Heartbeat> heartbeat(
      new Heartbeat(std::move(client), LivenessKey(job_id, me), options));
  WS_RETURN_IF_ERROR(
      heartbeat->client_->Set(heartbeat->key_, "beat 0", deadline, SetMode::kEphemeral));
  WS_RETURN_IF_ERROR(heartbeat->client_->Set(StrCat(heartbeat->key_, kSeenSuffix), "1", deadline));
  heartbeat->thread_ = std::thread([h = heartbeat.get()] { h->Run(); });
  return heartbeat;
}

Heartbeat::~Heartbeat() { Stop(); }

void Heartbeat::Run() {
  auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options_.heartbeat_interval_s));
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    ++beats_;
    Status status =
        client_->Set(key_, StrCat("beat ", beats_), CallDeadline(options_), SetMode::kEphemeral);
    if (!status.ok()) {
      // The client reconnects on the next beat; watchers judge us by what reaches the store.
      Log(LogLevel::kWarning, "heartbeat ", key_, " failed: ", status.message());
    }
    lock.lock();
  }
}

void Heartbeat::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  Status status = client_->Set(key_, kStoppedValue, CallDeadline(options_));
  if (!status.ok()) Log(LogLevel::kWarning, "heartbeat ", key_, ": ", status.message());
}

Result<std::unique_ptr<LivenessWatcher>> LivenessWatcher::Start(const StoreClientOptions& store,
                                                                std::string job_id,
                                                                LivenessOptions options,
                                                                Deadline deadline) {
  WS_RETURN_IF_ERROR(ValidateName("job id", job_id));
  WS_RETURN_IF_ERROR(options.Validate());
  WS_ASSIGN_OR_RETURN(auto client, StoreClient::Connect(store, deadline));
  std::unique_ptr<LivenessWatcher> watcher(
      new LivenessWatcher(std::move(client), std::move(job_id), options));
  watcher->last_scan_ok_ = Clock::now();
  WS_RETURN_IF_ERROR(watcher->Scan());
  watcher->thread_ = std::thread([w = watcher.get()] { w->Run(); });
  return watcher;
}

LivenessWatcher::~LivenessWatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LivenessWatcher::Run() {
  auto interval = std::chrono::duration_cast<Clock::duration>(ScanInterval(options_));
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    Status status = Scan();
    if (!status.ok()) Log(LogLevel::kWarning, "liveness watcher: ", status.message());
    lock.lock();
  }
}

Status LivenessWatcher::Scan() {
  const std::string prefix = StrCat(JobPrefix(job_id_), "live/");
  WS_ASSIGN_OR_RETURN(auto entries, client_->List(prefix, CallDeadline(options_)));
  const Deadline now = Clock::now();
  // After a gap in our own scans (store unreachable, this process starved) nobody's staleness can
  // be judged: give everyone a fresh start instead of declaring them all dead.
  const bool gap =
      now - last_scan_ok_ > std::chrono::duration<double>(options_.liveness_timeout_s / 2);
  last_scan_ok_ = now;
  const auto timeout = std::chrono::duration<double>(options_.liveness_timeout_s);

  std::lock_guard lock(mu_);
  for (auto& [id, state] : peers_) state.present = false;
  for (const auto& entry : entries) {
    std::string_view tail = std::string_view(entry.key).substr(prefix.size());
    const bool seen_marker = tail.ends_with(kSeenSuffix);
    if (seen_marker) tail.remove_suffix(kSeenSuffix.size());
    auto id = ParseParticipantKey(tail);
    if (!id.ok()) continue;  // not a heartbeat key; nothing to judge
    auto [it, inserted] = peers_.try_emplace(*id);
    PeerState& state = it->second;
    if (seen_marker) {
      // It has heartbeated; whether it still does is up to its ephemeral key (absent: died).
      if (inserted) state.last_change = now;
      continue;
    }
    if (inserted || state.value != entry.value || gap) state.last_change = now;
    state.value = entry.value;
    state.present = true;
  }
  failures_.clear();
  for (const auto& [id, state] : peers_) {
    if (!state.present) {
      failures_.push_back({id, "died (its store connection closed)"});
    } else if (state.value == kStoppedValue) {
      failures_.push_back({id, "stopped (it shut down its heartbeat)"});
    } else if (now - state.last_change > timeout) {
      double silent = std::chrono::duration<double>(now - state.last_change).count();
      failures_.push_back(
          {id, StrCat("stopped heartbeating (no heartbeat for ", silent,
                      " s; control.liveness_timeout is ", options_.liveness_timeout_s, " s)")});
    }
  }
  return Status::Ok();
}

std::vector<PeerFailure> LivenessWatcher::Failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

Status LivenessWatcher::CheckAlive(std::span<const ParticipantId> peers) const {
  std::lock_guard lock(mu_);
  for (const auto& failure : failures_) {
    if (std::find(peers.begin(), peers.end(), failure.peer) != peers.end()) {
      return Aborted(failure.ToString());
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::control
