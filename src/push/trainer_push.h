// TrainerPush: a trainer rank's side of the versioned push protocol.
//
// One push of step N, on every trainer rank:
//   BeginPush(N)      refuses N unless it is after the last committed and the last attempted step;
//                     trainer rank 0 announces the step (writes broadcasts/step_N/STABLE when
//                     push.marker_dir is set) and requests the push (embedded mode), offers it to
//                     an external orchestrator (external mode) or waits for TRANSFER_READY and
//                     then requests it (files mode); then every rank waits until every inference
//                     rank has paused (barrier "push-pause", push.pause_timeout).
//   StartTransfer()   the data phase begins: the caller writes this rank's weights ...
//   FinishTransfer(s) ... and reports how that went: an error fails the push for every rank; OK
//                     waits until every rank finished (barrier "push-transfer",
//                     push.transfer_timeout from StartTransfer).
//   Commit(N)         the final barrier of all trainer and inference ranks (push.commit_timeout);
//                     after it, every inference rank holds step N and may resume.
// Any error (a deadline, a dead or stalled peer, a failure reported by any rank) ends the push on
// every rank with a message naming the rank, the phase and the step; the inference ranks are then
// torn at step N until a later push commits. Calls out of order are kFailedPrecondition.
//
// Threading: one thread (the trainer's push thread) per object.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "control/rendezvous.h"
#include "push/push_session.h"
#include "push/push_types.h"

namespace weightsync::push {

class TrainerPush {
 public:
  // `rendezvous` is this trainer rank's (with a LivenessWatcher attached, so dead peers are
  // noticed before the deadlines); it must outlive this object.
  TrainerPush(control::Rendezvous& rendezvous, PushOptions options);

  Status BeginPush(uint64_t step);
  Status StartTransfer();
  Status FinishTransfer(Status transfer = Status::Ok());
  Status Commit(uint64_t step);

  // All four in order, with `transfer` as the data phase.
  Status Push(uint64_t step, const std::function<Status()>& transfer);

  // The push in progress, if any, and its phase.
  std::optional<uint64_t> current_step() const { return step_; }
  Phase phase() const { return phase_; }
  std::optional<uint64_t> last_committed() const { return last_committed_; }
  const PushTimings& last_timings() const { return timings_; }

 private:
  // Requests, offers or waits for the marker, as the orchestrator mode says (trainer rank 0).
  Status Announce(uint64_t step, control::Deadline deadline);
  // Checks that a push is in `expected` phase; reports nothing (a misuse is this caller's bug).
  Status Expect(Phase expected, std::string_view call) const;
  Status Failed(Phase phase, const Status& cause);
  // Deletes the barrier keys of steps before `committed` (trainer rank 0).
  void ForgetEarlierSteps(uint64_t committed);

  PushSession session_;
  std::optional<uint64_t> step_;  // the push in progress
  Phase phase_ = Phase::kIdle;    // its phase
  std::optional<uint64_t> last_attempted_;
  std::optional<uint64_t> last_committed_;
  // Steps this rank began whose barrier keys are still in the store (trainer rank 0 deletes them
  // once a later step commits: every rank has then left them).
  std::vector<uint64_t> steps_to_forget_;
  bool transfer_started_ = false;
  control::Deadline phase_start_{};
  control::Deadline push_start_{};
  PushTimings timings_;
};

}  // namespace weightsync::push
