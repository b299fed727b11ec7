// The arrive-and-wait step shared by rendezvous rounds and barriers (internal to control).
//
// Keys, under JobPrefix(job) + "<kind>/<name>/<generation>/":
//   arrived/<role>/<rank>  each participant's payload, created with compare-and-set (so a retried
//                          arrival is not counted twice)
//   count                  arrivals so far (atomic add)
//   done                   set by whichever participant's add reached the total
// Waiters wait on `done` in short slices; between slices they check the job's abort key and the
// liveness watcher, so a dead participant fails the wait early instead of at its deadline. The
// generation is part of every key, so arrivals for generation N-1 can never satisfy generation N.
//
// Threading: uses `client` from the calling thread only; the watcher is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/deadline.h"
#include "control/liveness.h"
#include "control/participant.h"
#include "control/store_client.h"
#include "control/wait_progress.h"

namespace weightsync::control {

struct CollectiveContext {
  StoreClient* client = nullptr;
  std::string job_id;
  ParticipantId me;
  std::vector<ParticipantId> everyone;       // sorted: trainers by rank, then inference by rank
  const LivenessWatcher* watcher = nullptr;  // optional
  // Optional: a key whose value, once set, fails the wait with kAborted carrying that value. The
  // push protocol passes its per-step failure key, so one rank's error ends every rank's wait for
  // that step without aborting the whole job (the next step must still be able to run).
  std::string cancel_key;
  // How often a wait logs which participants it still waits for.
  Clock::duration progress_interval = kWaitProgressInterval;
};

// Arrives with `payload` and waits until every participant arrived at the same generation. With
// `gather`, returns every participant's payload in `everyone` order. Errors: kDeadlineExceeded
// listing the participants that did not arrive; kAborted naming a dead participant or carrying the
// job's abort reason.
// The prefix of every key of one generation of a round or barrier ("barrier", "push-commit", 7).
std::string CollectiveGenerationPrefix(std::string_view job_id, std::string_view kind,
                                       std::string_view name, uint64_t generation);

Result<std::vector<std::string>> ArriveAndWait(const CollectiveContext& context,
                                               std::string_view kind, std::string_view name,
                                               uint64_t generation, std::string_view payload,
                                               bool gather, Deadline deadline);

// Key holding the reason the job was aborted (see Rendezvous::Abort).
std::string AbortKey(std::string_view job_id);

}  // namespace weightsync::control
