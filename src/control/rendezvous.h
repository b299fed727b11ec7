// Rendezvous: membership of a job and all-gather rounds, on top of the store.
//
// Join() registers one participant atomically:
//   - the job's config (world size of each role, protocol version, model-spec hash) is created by
//     the first joiner with compare-and-set; every later joiner must declare the same values, or
//     it is refused (kFailedPrecondition) with a message naming its rank and the first joiner's,
//     and the job is aborted so everyone already waiting fails at once instead of at a deadline;
//   - its (role, rank) is claimed with compare-and-set; a second claim is refused
//     (kAlreadyExists) naming both processes (host, pid, instance), unless the joiner may take
//     over a dead holder's rank (Membership::take_over_dead_holder) and the holder's heartbeat is
//     gone: then the rank is rejoined (rejoined() is true).
// Round(name, payload, deadline) is an all-gather: every participant contributes bytes and gets
// everyone's, ordered trainers by rank then inference by rank. Rounds of one name are numbered
// (generation 0, 1, ...) per Rendezvous object, so every participant must call rounds of a name
// in the same sequence. At the deadline every waiting participant fails with kDeadlineExceeded
// listing the missing roles and ranks; with a LivenessWatcher attached, a dead participant fails
// the round early (kAborted "peer inference 1 died ...").
//
// Threading: one thread uses a Rendezvous (and, during a call, its StoreClient); the watcher may
// be shared. The StoreClient and the watcher must outlive the Rendezvous.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/collective.h"
#include "control/liveness.h"
#include "control/participant.h"
#include "control/store_client.h"
#include "core/config.h"

namespace weightsync::control {

struct Membership {
  std::string job_id;
  ParticipantId id;
  int trainer_world_size = 1;  // may be 0 for a role that takes no part (tests, tools)
  int inference_world_size = 1;
  int protocol_version = 1;
  std::string spec_hash;  // the model spec's hash; every participant must agree
  // A restarted process may take its rank back from a holder whose heartbeat is gone (its
  // connection closed, or it stopped): the rank is then "rejoined". Join before starting this
  // process's own heartbeat, so the old holder's liveness is what gets judged.
  bool take_over_dead_holder = false;
};

struct RoundEntry {
  ParticipantId id;
  std::string payload;
};

class Rendezvous {
 public:
  static Result<std::unique_ptr<Rendezvous>> Join(StoreClient& client, Membership me,
                                                  Deadline deadline);

  Result<std::vector<RoundEntry>> Round(std::string_view name, std::string_view payload,
                                        Deadline deadline);

  // Records `reason` as the job's abort reason (the first one wins); every participant's waiting
  // round or barrier then fails with it.
  Status Abort(std::string_view reason, Deadline deadline);

  void SetLivenessWatcher(const LivenessWatcher* watcher) { context_.watcher = watcher; }

  const Membership& me() const { return me_; }
  // True when this process took its rank over from a dead holder (a restart).
  bool rejoined() const { return rejoined_; }
  // Every participant, trainers by rank then inference by rank.
  const std::vector<ParticipantId>& participants() const { return context_.everyone; }
  const CollectiveContext& context() const { return context_; }

 private:
  Rendezvous(Membership me, CollectiveContext context)
      : me_(std::move(me)), context_(std::move(context)) {}

  const Membership me_;
  CollectiveContext context_;
  bool rejoined_ = false;
  std::map<std::string, uint64_t, std::less<>> next_generation_;
};

}  // namespace weightsync::control
