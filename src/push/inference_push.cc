#include "push/inference_push.h"

#include <nlohmann/json.hpp>

#include "control/collective.h"
#include "core/log.h"
#include "push/push_requests.h"

namespace weightsync::push {
namespace {

using control::Clock;
using control::DeadlineIn;

double SecondsSince(control::Deadline start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

control::Deadline After(control::Deadline start, double seconds) {
  return start +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

nlohmann::json OptionalStep(std::optional<uint64_t> step) {
  return step ? nlohmann::json(*step) : nlohmann::json(nullptr);
}

}  // namespace

std::string InferenceSnapshot::ToJson() const {
  nlohmann::json out = {
      {"role", std::string(control::RoleName(id.role))},
      {"rank", id.rank},
      {"state", std::string(InferenceStateName(state))},
      {"step", OptionalStep(step)},
      {"committed_step", OptionalStep(committed_step)},
      {"torn_step", OptionalStep(torn_step)},
      {"held_by_operator", held_by_operator},
      {"push_in_progress", push_in_progress},
      {"phase", std::string(PhaseName(phase))},
      {"last_push",
       {{"outcome", last_outcome},
        {"timings_s",
         {{"pause", last_timings.pause_s},
          {"transfer", last_timings.transfer_s},
          {"post_update", last_timings.post_update_s},
          {"commit", last_timings.commit_s},
          {"resume", last_timings.resume_s},
          {"total", last_timings.total_s}}}}},
      {"last_error", last_error},
  };
  return out.dump();
}

InferencePush::InferencePush(control::Rendezvous& rendezvous, PushOptions options,
                             InferenceHooks hooks)
    : session_(rendezvous, std::move(options)), hooks_(std::move(hooks)) {
  snapshot_.id = session_.me();
}

Status InferencePush::RunHook(const std::function<Status()>& hook, std::string_view name) {
  if (!hook) return Status::Ok();
  Status status = hook();
  if (!status.ok()) return Status(status.code(), StrCat(name, " hook failed: ", status.message()));
  return status;
}

Status InferencePush::Rejoin(control::Deadline deadline) {
  WS_ASSIGN_OR_RETURN(std::optional<uint64_t> committed,
                      LastCommittedStep(session_.client(), session_.job(), deadline));
  last_seen_request_ = committed;
  rejoined_ = true;
  std::lock_guard lock(mu_);
  snapshot_.state = InferenceState::kTorn;
  snapshot_.torn_step = committed.value_or(0) + 1;
  snapshot_.last_outcome = "rejoined after a restart";
  snapshot_.last_error = "this process holds no committed weights until the next push commits";
  Log(LogLevel::kWarning, session_.me().ToString(), " rejoined the job after step ",
      committed.value_or(0), " committed; torn until the next push commits");
  return Status::Ok();
}

void InferencePush::SetState(InferenceState state) {
  std::lock_guard lock(mu_);
  snapshot_.state = state;
}

Status InferencePush::Expect(Phase expected, std::string_view call) const {
  std::lock_guard lock(mu_);
  if (!snapshot_.push_in_progress) {
    return FailedPrecondition(session_.me().ToString(), ": ", call,
                              " called with no push in progress");
  }
  if (snapshot_.phase != expected) {
    return FailedPrecondition("push step ", *snapshot_.step, ": ", session_.me().ToString(), ": ",
                              call, " called in phase ", PhaseName(snapshot_.phase));
  }
  return Status::Ok();
}

Status InferencePush::Tear(Phase phase, const Status& cause) {
  uint64_t step = 0;
  {
    std::lock_guard lock(mu_);
    step = *snapshot_.step;
  }
  Status error = session_.Fail(step, phase, cause);
  std::lock_guard lock(mu_);
  snapshot_.state = InferenceState::kTorn;
  snapshot_.torn_step = step;
  snapshot_.push_in_progress = false;
  snapshot_.phase = Phase::kIdle;
  snapshot_.last_outcome = StrCat("failed in phase ", PhaseName(phase));
  snapshot_.last_error = error.message();
  snapshot_.last_timings.total_s = SecondsSince(push_start_);
  return error;
}

Result<std::optional<uint64_t>> InferencePush::AwaitPush(control::Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (snapshot_.push_in_progress) {
      return FailedPrecondition("push step ", *snapshot_.step, ": ", session_.me().ToString(),
                                ": AwaitPush called in phase ", PhaseName(snapshot_.phase));
    }
  }
  uint64_t step = 0;
  while (true) {
    auto requested =
        WaitForRequest(session_.client(), session_.job(), last_seen_request_, deadline);
    if (!requested.ok()) {
      if (requested.status().code() == StatusCode::kDeadlineExceeded) {
        return std::optional<uint64_t>();
      }
      return requested.status().WithContext(session_.me().ToString() + ": waiting for a push");
    }
    step = *requested;
    last_seen_request_ = step;
    // A push that failed before this rank saw it never passed its pause barrier (this rank had
    // not arrived), so nothing was written here: skip it rather than tear intact weights.
    auto failed = session_.client().Get(keys::Failed(session_.job(), step),
                                        std::max(deadline, DeadlineIn(2)));
    if (failed.ok()) {
      Log(LogLevel::kInfo, "push step ", step, ": ", session_.me().ToString(),
          ": skipping it, it failed before this rank saw it: ", *failed);
      continue;
    }
    if (failed.status().code() != StatusCode::kNotFound) return failed.status();
    if (rejoined_) {
      // The previous incarnation of this rank may have paused for this push already.
      auto paused = session_.client().Get(
          control::CollectiveGenerationPrefix(session_.job(), "barrier", "push-pause", step) +
              "done",
          std::max(deadline, DeadlineIn(2)));
      if (paused.ok()) {
        Log(LogLevel::kInfo, "push step ", step, ": ", session_.me().ToString(),
            ": skipping it, it paused before this rank rejoined");
        continue;
      }
      if (paused.status().code() != StatusCode::kNotFound) return paused.status();
    }
    break;
  }

  push_start_ = Clock::now();
  const control::Deadline pause_deadline = After(push_start_, session_.options().pause_timeout_s);
  std::optional<uint64_t> committed;
  {
    std::lock_guard lock(mu_);
    committed = snapshot_.committed_step;
  }
  if (committed && step <= *committed) {
    // The request chain refuses this; a store that lost its keys could still produce it.
    return session_.Fail(
        step, Phase::kPause,
        FailedPrecondition("the requested step ", step, " is not after this rank's committed step ",
                           *committed));
  }
  {
    std::lock_guard lock(mu_);
    snapshot_.push_in_progress = true;
    snapshot_.step = step;
    snapshot_.phase = Phase::kPause;
    snapshot_.last_timings = PushTimings();
    snapshot_.last_outcome = "in progress";
  }
  session_.Publish(StrCat("step ", step, " phase pause"));
  {
    std::lock_guard engine(engine_mu_);
    InferenceState was;
    {
      std::lock_guard lock(mu_);
      was = snapshot_.state;  // under engine_mu_: an operator's Pause() has finished or not begun
    }
    if (was == InferenceState::kServing) {
      Status paused = RunHook(hooks_.pause, "pause");
      if (!paused.ok()) return Tear(Phase::kPause, paused);
    }
    SetState(InferenceState::kPaused);
  }
  Status ready = session_.Arrive(Phase::kPause, step, pause_deadline);
  if (!ready.ok()) return Tear(Phase::kPause, ready);
  std::lock_guard lock(mu_);
  snapshot_.last_timings.pause_s = SecondsSince(push_start_);
  snapshot_.phase = Phase::kTransfer;
  transfer_started_ = false;
  return std::optional<uint64_t>(step);
}

Status InferencePush::StartTransfer() {
  WS_RETURN_IF_ERROR(Expect(Phase::kTransfer, "StartTransfer"));
  if (transfer_started_) {
    return FailedPrecondition(session_.me().ToString(), ": StartTransfer called twice");
  }
  transfer_started_ = true;
  phase_start_ = Clock::now();
  uint64_t step = 0;
  {
    std::lock_guard lock(mu_);
    snapshot_.state = InferenceState::kReceiving;
    step = *snapshot_.step;
  }
  session_.Publish(StrCat("step ", step, " phase transfer (receiving)"));
  return Status::Ok();
}

Status InferencePush::FinishTransfer(Status received) {
  WS_RETURN_IF_ERROR(Expect(Phase::kTransfer, "FinishTransfer"));
  if (!transfer_started_) {
    return FailedPrecondition(session_.me().ToString(),
                              ": FinishTransfer called before StartTransfer");
  }
  uint64_t step = 0;
  {
    std::lock_guard lock(mu_);
    step = *snapshot_.step;
  }
  if (!received.ok()) return Tear(Phase::kTransfer, received);
  const control::Deadline deadline = After(phase_start_, session_.options().transfer_timeout_s);
  if (control::Expired(deadline)) {
    return Tear(Phase::kTransfer,
                DeadlineExceeded("the data phase took ", SecondsSince(phase_start_),
                                 " s; push.transfer_timeout is ",
                                 session_.options().transfer_timeout_s, " s"));
  }
  Status done = session_.Arrive(Phase::kTransfer, step, deadline);
  if (!done.ok()) return Tear(Phase::kTransfer, done);
  {
    std::lock_guard lock(mu_);
    snapshot_.last_timings.transfer_s = SecondsSince(phase_start_);
    snapshot_.phase = Phase::kPostUpdate;
  }
  phase_start_ = Clock::now();
  session_.Publish(StrCat("step ", step, " phase post-update"));
  {
    std::lock_guard engine(engine_mu_);
    for (size_t i = 0; i < hooks_.post_update.size(); ++i) {
      Status updated = RunHook(hooks_.post_update[i], StrCat("post-update ", i));
      if (!updated.ok()) return Tear(Phase::kPostUpdate, updated);
    }
  }
  std::lock_guard lock(mu_);
  snapshot_.last_timings.post_update_s = SecondsSince(phase_start_);
  snapshot_.phase = Phase::kCommit;
  phase_start_ = Clock::now();
  return Status::Ok();
}

Status InferencePush::Commit(uint64_t step) {
  WS_RETURN_IF_ERROR(Expect(Phase::kCommit, "Commit"));
  uint64_t current = 0;
  {
    std::lock_guard lock(mu_);
    current = *snapshot_.step;
  }
  if (step != current) {
    return Tear(Phase::kCommit, FailedPrecondition("Commit(", step,
                                                   ") does not match the push in "
                                                   "progress (step ",
                                                   current, ")"));
  }
  session_.Publish(StrCat("step ", step, " phase commit"));
  Status committed =
      session_.Arrive(Phase::kCommit, step, DeadlineIn(session_.options().commit_timeout_s));
  if (!committed.ok()) return Tear(Phase::kCommit, committed);
  {
    std::lock_guard lock(mu_);
    snapshot_.state = InferenceState::kCommitted;
    snapshot_.committed_step = step;
    snapshot_.torn_step.reset();
    snapshot_.last_outcome = "committed";
    snapshot_.last_error.clear();
    snapshot_.last_timings.commit_s = SecondsSince(phase_start_);
    snapshot_.phase = Phase::kResume;
  }
  Status recorded = RecordCommit(session_.client(), session_.job(), step, DeadlineIn(2));
  if (!recorded.ok()) {
    Log(LogLevel::kWarning, "push step ", step, ": ", session_.me().ToString(),
        ": committed, but could not record it in the store: ", recorded.ToString());
  }
  session_.Publish(StrCat("step ", step, " committed"));

  const auto resume_start = Clock::now();
  Status resumed = Status::Ok();
  {
    std::lock_guard engine(engine_mu_);
    bool held = false;
    {
      std::lock_guard lock(mu_);
      held = snapshot_.held_by_operator;
    }
    if (!held) {
      resumed = RunHook(hooks_.resume, "resume");
      // A failed resume leaves consistent weights of step N: committed, not torn; Resume() retries.
      if (resumed.ok()) SetState(InferenceState::kServing);
    }
  }
  std::lock_guard lock(mu_);
  snapshot_.push_in_progress = false;
  snapshot_.phase = Phase::kIdle;
  snapshot_.last_timings.resume_s = SecondsSince(resume_start);
  snapshot_.last_timings.total_s = SecondsSince(push_start_);
  if (!resumed.ok()) {
    Status error = session_.Error(step, Phase::kResume, resumed);
    snapshot_.last_error = error.message();
    Log(LogLevel::kError, error.message());
    return error;
  }
  return Status::Ok();
}

Result<std::optional<uint64_t>> InferencePush::ServeOnePush(
    control::Deadline await_deadline, const std::function<Status()>& receive) {
  WS_ASSIGN_OR_RETURN(std::optional<uint64_t> step, AwaitPush(await_deadline));
  if (!step) return step;
  WS_RETURN_IF_ERROR(StartTransfer());
  WS_RETURN_IF_ERROR(FinishTransfer(receive ? receive() : Status::Ok()));
  WS_RETURN_IF_ERROR(Commit(*step));
  return step;
}

Status InferencePush::Pause() {
  std::lock_guard engine(engine_mu_);
  InferenceState state;
  bool in_push = false;
  {
    std::lock_guard lock(mu_);
    state = snapshot_.state;
    in_push = snapshot_.push_in_progress;
    snapshot_.held_by_operator = true;
  }
  if (in_push || state != InferenceState::kServing) return Status::Ok();  // already paused
  Status paused = RunHook(hooks_.pause, "pause");
  std::lock_guard lock(mu_);
  if (!paused.ok()) {
    snapshot_.held_by_operator = false;
    snapshot_.last_error = StrCat(session_.me().ToString(), ": operator pause: ", paused.message());
    return Status(paused.code(), snapshot_.last_error);
  }
  snapshot_.state = InferenceState::kPaused;
  Log(LogLevel::kInfo, session_.me().ToString(), ": paused by the operator");
  return Status::Ok();
}

Status InferencePush::Resume(bool force) {
  std::lock_guard engine(engine_mu_);
  InferenceSnapshot now = Snapshot();
  const std::string me = session_.me().ToString();
  if (now.push_in_progress) {
    return FailedPrecondition(me, ": push step ", *now.step, " is in progress (phase ",
                              PhaseName(now.phase), "); refusing to resume in the middle of it");
  }
  if (now.state == InferenceState::kServing) {
    std::lock_guard lock(mu_);
    snapshot_.held_by_operator = false;
    return Status::Ok();
  }
  if (now.state == InferenceState::kTorn) {
    if (!force) {
      return FailedPrecondition(me, ": weights are torn at step ", *now.torn_step, " (",
                                now.last_error,
                                "); refusing to resume: the next committed push "
                                "repairs them, or resume with force to serve them anyway");
    }
    Log(LogLevel::kWarning, me, ": forced resume: serving weights torn at step ", *now.torn_step);
  }
  Status resumed = RunHook(hooks_.resume, "resume");
  std::lock_guard lock(mu_);
  if (!resumed.ok()) {
    snapshot_.last_error = StrCat(me, ": ", resumed.message());
    return Status(resumed.code(), snapshot_.last_error);
  }
  snapshot_.state = InferenceState::kServing;
  snapshot_.held_by_operator = false;
  return Status::Ok();
}

InferenceSnapshot InferencePush::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

}  // namespace weightsync::push
