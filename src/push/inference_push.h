// InferencePush: an inference rank's side of the versioned push protocol, and the state of its
// engine.
//
// States: serving -> paused -> receiving -> committed(N) -> serving; torn(N) after a failed push.
// One push of step N, on the rank's push thread:
//   AwaitPush(deadline)  waits for the next request (nothing happens if none comes: nullopt); then
//                        runs the pause hook (unless the engine is already paused) -> paused, and
//                        waits until every rank is ready (barrier "push-pause").
//   StartTransfer()      -> receiving: trainers write into this rank's buffers from now on.
//   FinishTransfer(s)    waits until every rank finished the data phase (barrier "push-transfer"),
//                        then runs the post-update hooks (derived weights) in order.
//   Commit(N)            the final barrier of every trainer and inference rank -> committed(N);
//                        then the resume hook -> serving, unless an operator holds the engine
//                        paused (Pause()), in which case it stays committed(N) until Resume().
// Any failure (a hook, a deadline, a dead or stalled peer, an error reported by any rank) leaves
// the rank torn(N): Resume() is refused unless forced, and the next committed push repairs it.
// A rank that sees a request only after that push already failed skips it: it never paused, so
// no trainer can have written to it.
//
// Operators and external orchestrators (the HTTP admin endpoint) call Pause(), Resume(force) and
// Snapshot() from other threads.
//
// Threading: AwaitPush/StartTransfer/FinishTransfer/Commit/ServeOnePush from one push thread;
// Pause, Resume and Snapshot from any thread. Hooks never run concurrently with each other (a
// mutex serializes every engine transition) and are called without the state lock held, so a
// Snapshot never waits for a slow hook.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/rendezvous.h"
#include "push/push_session.h"
#include "push/push_types.h"

namespace weightsync::push {

// The engine's side of a push. Each returns OK or an error that marks the rank torn.
struct InferenceHooks {
  std::function<Status()> pause;                     // stop serving (keep requests queued)
  std::vector<std::function<Status()>> post_update;  // e.g. recompute absorbed MLA weights
  std::function<Status()> resume;                    // serve again
};

struct InferenceSnapshot {
  control::ParticipantId id;
  InferenceState state = InferenceState::kServing;
  std::optional<uint64_t> step;            // the push in progress, or the last one
  std::optional<uint64_t> committed_step;  // the weights this rank holds, when not torn
  std::optional<uint64_t> torn_step;  // set while the weights are torn (even if forced to serve)
  bool held_by_operator = false;      // Pause() called; no automatic resume after a commit
  bool push_in_progress = false;
  Phase phase = Phase::kIdle;
  PushTimings last_timings;
  std::string last_outcome;  // "committed", "failed in phase transfer", "" before the first push
  std::string last_error;
  std::string ToJson() const;
};

class InferencePush {
 public:
  // `rendezvous` is this inference rank's (with a LivenessWatcher attached); it must outlive this.
  InferencePush(control::Rendezvous& rendezvous, PushOptions options, InferenceHooks hooks);

  // For a rank that rejoined the job after a restart (Rendezvous::rejoined()): it holds no
  // committed weights (torn) until a push commits, and it must never take part in a push its
  // previous incarnation already paused for (trainers may have written into that incarnation's
  // memory). So it skips every request after the last committed step whose pause barrier is
  // already complete (or that failed), and joins the first one still gathering its pause.
  // Call once, before AwaitPush.
  Status Rejoin(control::Deadline deadline);

  // The step of the next push, paused and ready to receive; nullopt when no push was requested by
  // `deadline` (nothing changed). Errors: the push failed (the rank is torn).
  Result<std::optional<uint64_t>> AwaitPush(control::Deadline deadline);
  Status StartTransfer();
  Status FinishTransfer(Status received = Status::Ok());
  Status Commit(uint64_t step);

  // AwaitPush, StartTransfer, `receive` (may be empty), FinishTransfer, Commit.
  Result<std::optional<uint64_t>> ServeOnePush(control::Deadline await_deadline,
                                               const std::function<Status()>& receive = {});

  // Operator pause: pauses a serving engine and holds it paused across pushes until Resume().
  Status Pause();
  // Resumes a paused or committed engine. A torn one only with `force` (logged as a warning: it
  // serves torn weights). Refused while a push is in progress.
  Status Resume(bool force);

  InferenceSnapshot Snapshot() const;

 private:
  Status Expect(Phase expected, std::string_view call) const;
  // Marks the rank torn at the current push's step, records the failure for every rank, ends it.
  Status Tear(Phase phase, const Status& cause);
  // Runs a hook; an empty one succeeds.
  static Status RunHook(const std::function<Status()>& hook, std::string_view name);
  void SetState(InferenceState state);

  PushSession session_;
  const InferenceHooks hooks_;
  std::optional<uint64_t> last_seen_request_;  // push thread only
  bool rejoined_ = false;                      // push thread only: until a push commits
  control::Deadline phase_start_{};            // push thread only
  control::Deadline push_start_{};             // push thread only
  bool transfer_started_ = false;              // push thread only

  std::mutex engine_mu_;  // serializes hooks and the transitions around them
  mutable std::mutex mu_;
  InferenceSnapshot snapshot_;  // guarded by mu_
};

}  // namespace weightsync::push
