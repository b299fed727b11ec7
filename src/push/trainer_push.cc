#include "push/trainer_push.h"

#include "core/log.h"
#include "push/markers.h"
#include "push/push_requests.h"

namespace weightsync::push {
namespace {

using control::Clock;
using control::DeadlineIn;

double SecondsSince(control::Deadline start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Describe(std::optional<uint64_t> step) {
  return step ? std::to_string(*step) : std::string("none");
}

}  // namespace

TrainerPush::TrainerPush(control::Rendezvous& rendezvous, PushOptions options)
    : session_(rendezvous, std::move(options)) {}

Status TrainerPush::Expect(Phase expected, std::string_view call) const {
  if (!step_) {
    return FailedPrecondition(session_.me().ToString(), ": ", call,
                              " called with no push in progress (last committed step ",
                              Describe(last_committed_), ")");
  }
  if (phase_ != expected) {
    return FailedPrecondition("push step ", *step_, ": ", session_.me().ToString(), ": ", call,
                              " called in phase ", PhaseName(phase_));
  }
  return Status::Ok();
}

Status TrainerPush::Failed(Phase phase, const Status& cause) {
  Status error = session_.Fail(*step_, phase, cause);
  timings_.total_s = SecondsSince(push_start_);
  step_.reset();
  phase_ = Phase::kIdle;
  return error;
}

Status TrainerPush::BeginPush(uint64_t step) {
  const std::string me = session_.me().ToString();
  if (step_) {
    return FailedPrecondition("push step ", step, ": ", me, ": push step ", *step_,
                              " is still in phase ", PhaseName(phase_));
  }
  if (last_attempted_ && step <= *last_attempted_) {
    return FailedPrecondition("push step ", step, " refused by ", me,
                              ": it is not after the last attempted step ", *last_attempted_,
                              " (last committed step ", Describe(last_committed_),
                              "); steps must strictly increase");
  }
  const control::Deadline deadline = DeadlineIn(session_.options().pause_timeout_s);
  WS_ASSIGN_OR_RETURN(auto committed,
                      LastCommittedStep(session_.client(), session_.job(), deadline));
  if (committed && step <= *committed) {
    return FailedPrecondition("push step ", step, " refused by ", me,
                              ": it is not after the last committed step ", *committed,
                              "; steps must strictly increase");
  }
  // A step that was attempted before (by this job, maybe by an earlier incarnation of this
  // process) still has its barrier arrivals in the store: running it again could pass barriers
  // on stale arrivals.
  auto failed = session_.client().Get(keys::Failed(session_.job(), step), deadline);
  if (failed.ok()) {
    return FailedPrecondition("push step ", step, " refused by ", me,
                              ": it was attempted before and failed (", *failed,
                              "); push a later step");
  }
  if (failed.status().code() != StatusCode::kNotFound) return failed.status();

  step_ = step;
  steps_to_forget_.push_back(step);
  phase_ = Phase::kPause;
  last_attempted_ = step;
  timings_ = PushTimings();
  push_start_ = Clock::now();
  session_.Publish(StrCat("step ", step, " phase pause"));
  if (session_.me().rank == 0) {
    Status announced = Announce(step, deadline);
    if (!announced.ok()) return Failed(Phase::kPause, announced);
  }
  Status paused = session_.Arrive(Phase::kPause, step, deadline);
  if (!paused.ok()) return Failed(Phase::kPause, paused);
  timings_.pause_s = SecondsSince(push_start_);
  phase_ = Phase::kTransfer;
  transfer_started_ = false;
  return Status::Ok();
}

Status TrainerPush::Announce(uint64_t step, control::Deadline deadline) {
  const PushOptions& options = session_.options();
  if (!options.marker_dir.empty()) {
    WS_RETURN_IF_ERROR(
        WriteMarker(MarkerPath(options.marker_dir, step, kStableMarker), std::to_string(step)));
  }
  switch (options.orchestrator) {
    case OrchestratorMode::kEmbedded:
      break;
    case OrchestratorMode::kExternal:
      // The orchestrator answers with the request; the pause barrier's deadline covers its delay.
      return OfferPush(session_.client(), session_.job(), step, deadline).status();
    case OrchestratorMode::kFiles:
      WS_RETURN_IF_ERROR(
          WaitForMarker(MarkerPath(options.marker_dir, step, kTransferReadyMarker), deadline));
      break;
  }
  return RequestPush(session_.client(), session_.job(), step, session_.me().ToString(), deadline)
      .status();
}

Status TrainerPush::StartTransfer() {
  WS_RETURN_IF_ERROR(Expect(Phase::kTransfer, "StartTransfer"));
  if (transfer_started_) {
    return FailedPrecondition("push step ", *step_, ": ", session_.me().ToString(),
                              ": StartTransfer called twice");
  }
  transfer_started_ = true;
  phase_start_ = Clock::now();
  session_.Publish(StrCat("step ", *step_, " phase transfer"));
  return Status::Ok();
}

Status TrainerPush::FinishTransfer(Status transfer) {
  WS_RETURN_IF_ERROR(Expect(Phase::kTransfer, "FinishTransfer"));
  if (!transfer_started_) {
    return FailedPrecondition("push step ", *step_, ": ", session_.me().ToString(),
                              ": FinishTransfer called before StartTransfer");
  }
  if (!transfer.ok()) return Failed(Phase::kTransfer, transfer);
  const control::Deadline deadline =
      phase_start_ + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(session_.options().transfer_timeout_s));
  if (control::Expired(deadline)) {
    return Failed(Phase::kTransfer,
                  DeadlineExceeded("the data phase took ", SecondsSince(phase_start_),
                                   " s; push.transfer_timeout is ",
                                   session_.options().transfer_timeout_s, " s"));
  }
  Status done = session_.Arrive(Phase::kTransfer, *step_, deadline);
  if (!done.ok()) return Failed(Phase::kTransfer, done);
  timings_.transfer_s = SecondsSince(phase_start_);
  phase_ = Phase::kCommit;
  phase_start_ = Clock::now();
  session_.Publish(StrCat("step ", *step_, " phase commit"));
  return Status::Ok();
}

Status TrainerPush::Commit(uint64_t step) {
  WS_RETURN_IF_ERROR(Expect(Phase::kCommit, "Commit"));
  if (step != *step_) {
    return Failed(Phase::kCommit, FailedPrecondition("Commit(", step,
                                                     ") does not match the push "
                                                     "in progress (step ",
                                                     *step_, ")"));
  }
  Status committed =
      session_.Arrive(Phase::kCommit, step, DeadlineIn(session_.options().commit_timeout_s));
  if (!committed.ok()) return Failed(Phase::kCommit, committed);
  timings_.commit_s = SecondsSince(phase_start_);
  timings_.total_s = SecondsSince(push_start_);
  last_committed_ = step;
  step_.reset();
  phase_ = Phase::kIdle;
  Status recorded = RecordCommit(session_.client(), session_.job(), step, DeadlineIn(2));
  if (!recorded.ok()) {
    Log(LogLevel::kWarning, "push step ", step, ": ", session_.me().ToString(),
        ": committed, but could not record it in the store: ", recorded.ToString());
  }
  session_.Publish(StrCat("step ", step, " committed"));
  ForgetEarlierSteps(step);
  return Status::Ok();
}

void TrainerPush::ForgetEarlierSteps(uint64_t committed) {
  if (session_.me().rank != 0) return;  // one rank is enough; deleting is idempotent
  std::vector<uint64_t> kept;
  for (uint64_t step : steps_to_forget_) {
    if (step >= committed) {
      kept.push_back(step);
      continue;
    }
    Status forgotten = session_.Forget(step, DeadlineIn(2));
    if (!forgotten.ok()) {
      Log(LogLevel::kWarning, "push step ", step, ": could not delete its barrier keys: ",
          forgotten.ToString());
      kept.push_back(step);  // try again after the next commit
    }
  }
  steps_to_forget_ = std::move(kept);
}

Status TrainerPush::Push(uint64_t step, const std::function<Status()>& transfer) {
  WS_RETURN_IF_ERROR(BeginPush(step));
  WS_RETURN_IF_ERROR(StartTransfer());
  WS_RETURN_IF_ERROR(FinishTransfer(transfer ? transfer() : Status::Ok()));
  return Commit(step);
}

}  // namespace weightsync::push
