// The store side of requesting pushes, shared by trainer rank 0 (embedded mode), trainer rank 0's
// offers (external mode) and external orchestrators (`weightsync orchestrate`, or any store
// client that writes the same keys; push_types.h lists them).
//
// Requests form a chain: the request for step N is stored under request-after/<previous step>, so
// an inference rank that has seen step P waits for exactly one key, request-after/P, and can never
// miss or reorder a request. The chain key is claimed with compare-and-set, which makes it the
// lock: two requesters cannot both append after P, and `last_requested` is only a hint for where
// the chain ends (a requester that died between the two writes leaves a stale hint that the next
// requester walks past). Offers (external mode) use the same scheme under offer-after/.
//
// Threading: plain functions; each uses the given client from the calling thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/deadline.h"
#include "control/store_client.h"
#include "weightsync/status.h"

namespace weightsync::push {

// Appends step `step` to the job's request chain. Refused (kFailedPrecondition) when `step` is
// not after the last requested step, naming both and the last committed one. Returns the step it
// follows (nullopt for the first push).
Result<std::optional<uint64_t>> RequestPush(control::StoreClient& client, std::string_view job,
                                            uint64_t step, std::string_view requester,
                                            control::Deadline deadline);
// The same for the offer chain: trainer rank 0 says "step N is ready" to an external orchestrator.
Result<std::optional<uint64_t>> OfferPush(control::StoreClient& client, std::string_view job,
                                          uint64_t step, control::Deadline deadline);

// The step requested after `previous`, once it is; kDeadlineExceeded when none is by `deadline`.
Result<uint64_t> WaitForRequest(control::StoreClient& client, std::string_view job,
                                std::optional<uint64_t> previous, control::Deadline deadline);
Result<uint64_t> WaitForOffer(control::StoreClient& client, std::string_view job,
                              std::optional<uint64_t> previous, control::Deadline deadline);

// The last requested / committed step, nullopt when there is none yet.
Result<std::optional<uint64_t>> LastRequestedStep(control::StoreClient& client,
                                                  std::string_view job, control::Deadline deadline);
Result<std::optional<uint64_t>> LastCommittedStep(control::StoreClient& client,
                                                  std::string_view job, control::Deadline deadline);

// Records that push `step` failed (the first reason wins; later ones are dropped) and its outcome.
// Every wait of that step then fails at once. Returns the recorded reason.
Result<std::string> ReportPushFailure(control::StoreClient& client, std::string_view job,
                                      uint64_t step, std::string_view reason,
                                      control::Deadline deadline);
// Records a committed push: its outcome (unless a failure was recorded first) and `committed`.
Status RecordCommit(control::StoreClient& client, std::string_view job, uint64_t step,
                    control::Deadline deadline);

// "committed" or "failed: <reason>", once push `step` ended; kDeadlineExceeded otherwise.
Result<std::string> WaitForOutcome(control::StoreClient& client, std::string_view job,
                                   uint64_t step, control::Deadline deadline);

}  // namespace weightsync::push
