// An external orchestrator over the store: what `weightsync orchestrate` runs, and what any other
// store client (prime-rl's orchestrator, a script) can do with the same keys.
//
// With push.orchestrator = external, trainer rank 0 offers each step (offer-after/<prev>) instead
// of requesting it. The orchestrator follows the offers: for each it may do its own preparation
// (e.g. pause engines through their HTTP endpoints), then requests the push (request-after/<prev>),
// which pauses every inference rank and lets the trainers write, and waits for the push's outcome
// (step/<N>/outcome: "committed" or "failed: <reason>"). Inference ranks resume by themselves
// after a commit unless an operator or orchestrator holds them paused through /pause; then it is
// the holder's /resume that resumes them.
//
// Threading: plain functions on the caller's client.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "control/store_client.h"
#include "weightsync/status.h"

namespace weightsync::push {

struct OrchestratedPush {
  uint64_t step = 0;
  bool committed = false;
  std::string outcome;  // "committed" or "failed: <reason>"
  double seconds = 0;   // from the request to the outcome
};

struct OrchestrateOptions {
  std::string job;
  double offer_timeout_s = 3600;   // how long to wait for the trainer's next offer
  double outcome_timeout_s = 600;  // from the request until the push committed or failed
  // Called after an offer arrived and before the push is requested (e.g. to pause engines).
  std::function<Status(uint64_t step)> before_request;
};

// Waits for the offer after `after` (nullopt: the first), requests it and waits for its outcome.
// A failed push is a result (committed = false), not an error; errors are deadlines and store
// failures.
Result<OrchestratedPush> OrchestrateOnePush(control::StoreClient& client,
                                            const OrchestrateOptions& options,
                                            std::optional<uint64_t> after);

}  // namespace weightsync::push
