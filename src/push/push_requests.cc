#include "push/push_requests.h"

#include "control/wait_progress.h"
#include "push/push_types.h"

namespace weightsync::push {
namespace {

using control::Deadline;
using control::StoreClient;

Result<std::optional<uint64_t>> OptionalStep(StoreClient& client, const std::string& key,
                                             Deadline deadline) {
  auto value = client.Get(key, deadline);
  if (!value.ok()) {
    if (value.status().code() == StatusCode::kNotFound) return std::optional<uint64_t>();
    return value.status();
  }
  WS_ASSIGN_OR_RETURN(uint64_t step, ParseStep(*value));
  return std::optional<uint64_t>(step);
}

std::string Describe(std::optional<uint64_t> step) {
  return step ? std::to_string(*step) : std::string("none");
}

// Appends `step` after the current end of a chain (see the header); `hint_key` holds the last
// appended step, `link` names the key following a step.
template <typename LinkFn>
Result<std::optional<uint64_t>> Append(StoreClient& client, std::string_view job,
                                       const std::string& hint_key, LinkFn link, uint64_t step,
                                       std::string_view what, std::string_view value,
                                       Deadline deadline) {
  WS_ASSIGN_OR_RETURN(std::optional<uint64_t> previous, OptionalStep(client, hint_key, deadline));
  while (true) {
    auto next = client.Get(link(job, previous), deadline);
    if (next.ok()) {  // the hint is stale: walk to the end of the chain
      WS_ASSIGN_OR_RETURN(uint64_t next_step, ParseStep(*next));
      previous = next_step;
      continue;
    }
    if (next.status().code() != StatusCode::kNotFound) return next.status();
    if (previous && step <= *previous) {
      WS_ASSIGN_OR_RETURN(auto committed, LastCommittedStep(client, job, deadline));
      return FailedPrecondition("push step ", step, " refused: it is not after the last ", what,
                                " step ", *previous, " (last committed step ", Describe(committed),
                                "); steps must strictly increase");
    }
    WS_ASSIGN_OR_RETURN(auto cas,
                        client.CompareAndSet(link(job, previous), std::nullopt, value, deadline));
    if (!cas.swapped) continue;  // another requester appended first; walk past it
    WS_RETURN_IF_ERROR(client.Set(hint_key, std::to_string(step), deadline));
    return previous;
  }
}

Result<uint64_t> WaitForLink(StoreClient& client, const std::string& key, Deadline deadline,
                             std::string_view what) {
  WS_ASSIGN_OR_RETURN(std::string value, control::WaitWithProgress(client, key, deadline, what));
  return ParseStep(value);
}

}  // namespace

Result<std::optional<uint64_t>> RequestPush(StoreClient& client, std::string_view job,
                                            uint64_t step, std::string_view requester,
                                            Deadline deadline) {
  // A step at or below the last committed one is refused even if the chain is empty (a fresh
  // chain after the store lost its keys must not roll weights back).
  WS_ASSIGN_OR_RETURN(auto committed, LastCommittedStep(client, job, deadline));
  if (committed && step <= *committed) {
    return FailedPrecondition("push step ", step,
                              " refused: it is not after the last committed "
                              "step ",
                              *committed, "; steps must strictly increase");
  }
  return Append(client, job, keys::LastRequested(job), keys::RequestAfter, step, "requested",
                StrCat(step, " requested by ", requester), deadline);
}

Result<std::optional<uint64_t>> OfferPush(StoreClient& client, std::string_view job, uint64_t step,
                                          Deadline deadline) {
  return Append(client, job, keys::LastOffered(job), keys::OfferAfter, step, "offered",
                std::to_string(step), deadline);
}

Result<uint64_t> WaitForRequest(StoreClient& client, std::string_view job,
                                std::optional<uint64_t> previous, Deadline deadline) {
  // An inference rank idles here between pushes: no progress lines, the wait is not a fault.
  WS_ASSIGN_OR_RETURN(std::string value, client.Wait(keys::RequestAfter(job, previous), deadline));
  return ParseStep(value);
}

Result<uint64_t> WaitForOffer(StoreClient& client, std::string_view job,
                              std::optional<uint64_t> previous, Deadline deadline) {
  return WaitForLink(client, keys::OfferAfter(job, previous), deadline,
                     StrCat("job ", job, ": waiting for a trainer's push offer after step ",
                            Describe(previous), " (is a trainer of job '", job, "' running?)"));
}

Result<std::optional<uint64_t>> LastRequestedStep(StoreClient& client, std::string_view job,
                                                  Deadline deadline) {
  return OptionalStep(client, keys::LastRequested(job), deadline);
}

Result<std::optional<uint64_t>> LastCommittedStep(StoreClient& client, std::string_view job,
                                                  Deadline deadline) {
  return OptionalStep(client, keys::Committed(job), deadline);
}

Result<std::string> ReportPushFailure(StoreClient& client, std::string_view job, uint64_t step,
                                      std::string_view reason, Deadline deadline) {
  WS_ASSIGN_OR_RETURN(
      auto failed, client.CompareAndSet(keys::Failed(job, step), std::nullopt, reason, deadline));
  std::string recorded = failed.current.value_or(std::string(reason));
  WS_RETURN_IF_ERROR(client
                         .CompareAndSet(keys::Outcome(job, step), std::nullopt,
                                        StrCat("failed: ", recorded), deadline)
                         .status());
  return recorded;
}

Status RecordCommit(StoreClient& client, std::string_view job, uint64_t step, Deadline deadline) {
  WS_RETURN_IF_ERROR(
      client.CompareAndSet(keys::Outcome(job, step), std::nullopt, "committed", deadline).status());
  // Every rank of step N writes N before it can take part in N+1, so a plain set never moves the
  // committed step backwards.
  return client.Set(keys::Committed(job), std::to_string(step), deadline);
}

Result<std::string> WaitForOutcome(StoreClient& client, std::string_view job, uint64_t step,
                                   Deadline deadline) {
  return control::WaitWithProgress(client, keys::Outcome(job, step), deadline,
                                   StrCat("job ", job, ": waiting for the outcome of push ", step));
}

}  // namespace weightsync::push
