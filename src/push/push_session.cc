#include "push/push_session.h"

#include "core/log.h"
#include "push/push_requests.h"

namespace weightsync::push {
namespace {

// Failure reports and state updates are best effort and must not hang a rank that is already
// failing (the store may be the thing that broke).
constexpr double kReportTimeoutS = 2;

}  // namespace

std::string PushSession::ErrorPrefix(uint64_t step, Phase phase) const {
  return StrCat("push step ", step, ": phase ", PhaseName(phase), ": ", me().ToString(), ": ");
}

Status PushSession::Arrive(Phase phase, uint64_t step, control::Deadline deadline) {
  const std::string name = StrCat("push-", PhaseName(phase));
  control::Barrier barrier(rendezvous_, name);
  Status arrived = barrier.Arrive(step, deadline, keys::Failed(job(), step));
  if (arrived.ok()) return arrived;
  // The barrier's own label repeats what the push error's prefix says (step, phase, rank).
  std::string_view detail = arrived.message();
  const std::string label = StrCat("job ", job(), ": barrier '", name, "' generation ", step, " (",
                                   me().ToString(), "): ");
  if (detail.starts_with(label)) detail.remove_prefix(label.size());
  std::string dead = arrived.code() == StatusCode::kAborted ? DescribeDeadPeers(detail) : "";
  return Error(step, phase, Status(arrived.code(), StrCat(detail, dead)));
}

Status PushSession::Forget(uint64_t step, control::Deadline deadline) {
  for (Phase phase : {Phase::kPause, Phase::kTransfer, Phase::kCommit}) {
    control::Barrier barrier(rendezvous_, StrCat("push-", PhaseName(phase)));
    WS_RETURN_IF_ERROR(barrier.Forget(step, deadline));
  }
  return Status::Ok();
}

Status PushSession::Fail(uint64_t step, Phase phase, const Status& cause) {
  const std::string prefix = ErrorPrefix(step, phase);
  std::string_view detail = cause.message();
  if (detail.starts_with(prefix)) detail.remove_prefix(prefix.size());  // already a push error
  Status error(cause.code(), StrCat(prefix, detail));
  // Other ranks' waits end with this reason after their own prefix, so it names this rank and
  // its phase but not the step again.
  std::string reason = StrCat(me().ToString(), " failed in phase ", PhaseName(phase), ": ", detail);
  auto recorded =
      ReportPushFailure(client(), job(), step, reason, control::DeadlineIn(kReportTimeoutS));
  if (!recorded.ok()) {
    Log(LogLevel::kWarning, "push step ", step, ": ", me().ToString(),
        " could not record its failure in the store: ", recorded.status().ToString());
  }
  Log(LogLevel::kError, error.message());
  Publish(StrCat("step ", step, " failed in phase ", PhaseName(phase)));
  return error;
}

Status PushSession::Error(uint64_t step, Phase phase, const Status& cause) const {
  return Status(cause.code(), StrCat(ErrorPrefix(step, phase), cause.message()));
}

void PushSession::Publish(std::string_view what) {
  Status status =
      client().Set(keys::State(job(), me()), what, control::DeadlineIn(kReportTimeoutS));
  if (!status.ok()) {
    Log(LogLevel::kDebug, me().ToString(), ": could not publish its state: ", status.ToString());
  }
}

std::string PushSession::DescribeDeadPeers(std::string_view message) {
  const control::LivenessWatcher* watcher = rendezvous_.context().watcher;
  if (watcher == nullptr) return "";
  std::string out;
  for (const auto& failure : watcher->Failures()) {
    // Only the peers the abort is about ("peer trainer 1 died ..."), not every stopped rank.
    const std::string peer = failure.peer.ToString();
    if (message.find(StrCat("peer ", peer, " ")) == std::string_view::npos ||
        message.find(StrCat(peer, " was last at")) != std::string_view::npos) {
      continue;
    }
    auto last =
        client().Get(keys::State(job(), failure.peer), control::DeadlineIn(kReportTimeoutS));
    if (last.ok()) out += StrCat("; ", peer, " was last at: ", *last);
  }
  return out;
}

}  // namespace weightsync::push
