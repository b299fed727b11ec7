#include "push/push_session.h"

#include "core/log.h"
#include "push/push_requests.h"

namespace weightsync::push {
namespace {

// Failure reports and state updates are best effort and must not hang a rank that is already
// failing (the store may be the thing that broke).
constexpr double kReportTimeoutS = 2;

constexpr std::string_view kPushErrorPrefix = "push step ";

}  // namespace

Status PushSession::Arrive(Phase phase, uint64_t step, control::Deadline deadline) {
  control::Barrier barrier(rendezvous_, StrCat("push-", PhaseName(phase)));
  Status arrived = barrier.Arrive(step, deadline, keys::Failed(job(), step));
  if (arrived.ok()) return arrived;
  std::string dead = arrived.code() == StatusCode::kAborted ? DescribeDeadPeers() : "";
  return Error(step, phase, Status(arrived.code(), arrived.message() + dead));
}

Status PushSession::Fail(uint64_t step, Phase phase, const Status& cause) {
  Status error = cause.message().starts_with(kPushErrorPrefix) ? cause : Error(step, phase, cause);
  std::string reason =
      StrCat(me().ToString(), " failed in phase ", PhaseName(phase), ": ", error.message());
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
  return Status(cause.code(), StrCat(kPushErrorPrefix, step, ": phase ", PhaseName(phase), ": ",
                                     me().ToString(), ": ", cause.message()));
}

void PushSession::Publish(std::string_view what) {
  Status status =
      client().Set(keys::State(job(), me()), what, control::DeadlineIn(kReportTimeoutS));
  if (!status.ok()) {
    Log(LogLevel::kDebug, me().ToString(), ": could not publish its state: ", status.ToString());
  }
}

std::string PushSession::DescribeDeadPeers() {
  const control::LivenessWatcher* watcher = rendezvous_.context().watcher;
  if (watcher == nullptr) return "";
  std::string out;
  for (const auto& failure : watcher->Failures()) {
    auto last =
        client().Get(keys::State(job(), failure.peer), control::DeadlineIn(kReportTimeoutS));
    if (last.ok()) out += StrCat("; ", failure.peer.ToString(), " was last at: ", *last);
  }
  return out;
}

}  // namespace weightsync::push
