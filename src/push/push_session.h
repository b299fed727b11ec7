// PushSession: what trainer and inference ranks share while taking part in pushes (internal to
// the push layer): the phase barriers, failure reports and the rank's published state.
//
// Each phase ends in control::Barrier "push-<phase>" at generation = step, with the step's
// failure key as the barrier's cancel key: when any rank reports a failure, every other rank's
// wait for that step ends at once with that rank's reason instead of at the deadline. A dead or
// stalled peer is noticed through the LivenessWatcher attached to the rendezvous.
//
// Threading: one thread at a time (the rank's push thread); uses the rendezvous's StoreClient.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/barrier.h"
#include "control/rendezvous.h"
#include "push/push_types.h"

namespace weightsync::push {

class PushSession {
 public:
  // `rendezvous` (with its StoreClient and watcher) must outlive the session.
  PushSession(control::Rendezvous& rendezvous, PushOptions options)
      : rendezvous_(rendezvous), options_(std::move(options)) {}

  // Arrives at the barrier that ends `phase` of push `step` and waits for every rank. Errors are
  // Error(step, phase, cause) and name the missing, dead or failed ranks.
  Status Arrive(Phase phase, uint64_t step, control::Deadline deadline);
  // Deletes the phase barriers' keys of `step`; only after every rank has left that step.
  Status Forget(uint64_t step, control::Deadline deadline);

  // Reports that push `step` failed on this rank in `phase` (first reporter wins) and returns the
  // error for the caller. A cause that already is a push error of this phase (from Arrive) keeps
  // its one prefix.
  Status Fail(uint64_t step, Phase phase, const Status& cause);

  // "push step 12: phase commit: trainer 0: <cause>", keeping the cause's code.
  Status Error(uint64_t step, Phase phase, const Status& cause) const;

  // Publishes what this rank is doing (state/<role>/<rank>), best effort: operators and other
  // ranks' error messages read it, nothing waits on it.
  void Publish(std::string_view what);

  control::StoreClient& client() const { return *rendezvous_.context().client; }
  const std::string& job() const { return rendezvous_.me().job_id; }
  control::ParticipantId me() const { return rendezvous_.me().id; }
  const PushOptions& options() const { return options_; }

 private:
  // "push step 12: phase commit: trainer 0: "
  std::string ErrorPrefix(uint64_t step, Phase phase) const;
  // For an abort caused by dead peers named in `message`: what each one last published.
  std::string DescribeDeadPeers(std::string_view message);

  control::Rendezvous& rendezvous_;
  const PushOptions options_;
};

}  // namespace weightsync::push
