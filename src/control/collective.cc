#include "control/collective.h"

#include <algorithm>
#include <map>
#include <set>

namespace weightsync::control {
namespace {

// How often a waiter looks up from the store's wait to check for aborts and dead peers: the
// promptness of early failure, against a couple of small requests per waiter per slice.
constexpr auto kCheckInterval = std::chrono::milliseconds(100);

// Bookkeeping after the caller's deadline passed (collecting who is missing) still needs a moment.
Deadline AtLeastOneSecond(Deadline deadline) { return std::max(deadline, DeadlineIn(1.0)); }

Result<std::set<ParticipantId>> Arrived(StoreClient& client, const std::string& arrived_prefix,
                                        Deadline deadline) {
  WS_ASSIGN_OR_RETURN(auto entries, client.List(arrived_prefix, deadline));
  std::set<ParticipantId> arrived;
  for (const auto& entry : entries) {
    auto id = ParseParticipantKey(std::string_view(entry.key).substr(arrived_prefix.size()));
    if (id.ok()) arrived.insert(*id);
  }
  return arrived;
}

std::vector<ParticipantId> Missing(const std::vector<ParticipantId>& everyone,
                                   const std::set<ParticipantId>& arrived) {
  std::vector<ParticipantId> missing;
  for (const auto& id : everyone) {
    if (!arrived.contains(id)) missing.push_back(id);
  }
  return missing;
}

// Progress only: a failed listing is reported, the wait itself goes on.
void ReportMissing(const CollectiveContext& context, const std::string& arrived_prefix,
                   const WaitProgress& progress) {
  auto arrived = Arrived(*context.client, arrived_prefix, DeadlineIn(1.0));
  if (!arrived.ok()) return progress.Report(arrived.status().ToString());
  progress.Report(StrCat("missing ", DescribeParticipants(Missing(context.everyone, *arrived)),
                         " (", arrived->size(), " of ", context.everyone.size(), " arrived)"));
}

Result<std::vector<std::string>> Gather(const CollectiveContext& context,
                                        const std::string& arrived_prefix, Deadline deadline) {
  StoreClient& client = *context.client;
  std::map<ParticipantId, std::string> payloads;
  auto entries = client.List(arrived_prefix, deadline);
  if (entries.ok()) {
    for (auto& entry : *entries) {
      auto id = ParseParticipantKey(std::string_view(entry.key).substr(arrived_prefix.size()));
      if (id.ok()) payloads[*id] = std::move(entry.value);
    }
  } else if (entries.status().code() != StatusCode::kResourceExhausted) {
    return entries.status();
  } else {
    // Too much for one reply (control.max_message_size): one request per participant instead.
    for (const auto& id : context.everyone) {
      WS_ASSIGN_OR_RETURN(payloads[id], client.Get(arrived_prefix + ParticipantKey(id), deadline));
    }
  }
  std::vector<std::string> out;
  out.reserve(context.everyone.size());
  for (const auto& id : context.everyone) {
    auto it = payloads.find(id);
    if (it == payloads.end()) {
      return Internal("the arrival of ", id.ToString(), " vanished after everyone arrived");
    }
    out.push_back(std::move(it->second));
  }
  return out;
}

}  // namespace

std::string AbortKey(std::string_view job_id) { return StrCat(JobPrefix(job_id), "abort"); }

std::string CollectiveGenerationPrefix(std::string_view job_id, std::string_view kind,
                                       std::string_view name, uint64_t generation) {
  return StrCat(JobPrefix(job_id), kind, "/", name, "/", generation, "/");
}

Result<std::vector<std::string>> ArriveAndWait(const CollectiveContext& context,
                                               std::string_view kind, std::string_view name,
                                               uint64_t generation, std::string_view payload,
                                               bool gather, Deadline deadline) {
  WS_RETURN_IF_ERROR(ValidateName(kind, name));
  StoreClient& client = *context.client;
  const std::string label = StrCat("job ", context.job_id, ": ", kind, " '", name, "' generation ",
                                   generation, " (", context.me.ToString(), ")");
  const std::string base = CollectiveGenerationPrefix(context.job_id, kind, name, generation);
  const std::string arrived_prefix = base + "arrived/";
  const Deadline start = Clock::now();
  WaitProgress progress(label, deadline, context.progress_interval);

  auto arrival = client.CompareAndSet(arrived_prefix + ParticipantKey(context.me), std::nullopt,
                                      payload, deadline);
  if (!arrival.ok()) return arrival.status().WithContext(label);
  if (arrival->swapped) {
    auto count = client.Add(base + "count", 1, deadline);
    if (!count.ok()) return count.status().WithContext(label);
    if (*count == static_cast<int64_t>(context.everyone.size())) {
      WS_RETURN_IF_ERROR(client.Set(base + "done", "1", deadline).WithContext(label));
    }
  } else if (arrival->current != payload) {
    return FailedPrecondition(label,
                              ": already arrived with a different payload (two processes "
                              "claiming the same rank, or a reused generation)");
  }

  while (true) {
    auto done = client.Wait(base + "done", std::min(deadline, Clock::now() + kCheckInterval));
    if (done.ok()) break;
    if (done.status().code() != StatusCode::kDeadlineExceeded) {
      return done.status().WithContext(label);
    }
    auto abort = client.Get(AbortKey(context.job_id), AtLeastOneSecond(deadline));
    if (abort.ok()) return Aborted(label, ": the job was aborted: ", *abort);
    if (abort.status().code() != StatusCode::kNotFound) return abort.status().WithContext(label);
    if (!context.cancel_key.empty()) {
      auto cancel = client.Get(context.cancel_key, AtLeastOneSecond(deadline));
      if (cancel.ok()) return Aborted(label, ": ", *cancel);
      if (cancel.status().code() != StatusCode::kNotFound) {
        return cancel.status().WithContext(label);
      }
    }

    const bool expired = Expired(deadline);
    const bool someone_failed = context.watcher && !context.watcher->Failures().empty();
    if (progress.Due()) ReportMissing(context, arrived_prefix, progress);
    if (!expired && !someone_failed) continue;
    WS_ASSIGN_OR_RETURN(auto arrived, Arrived(client, arrived_prefix, AtLeastOneSecond(deadline)));
    std::vector<ParticipantId> missing = Missing(context.everyone, arrived);
    if (missing.empty()) break;  // all here; the last one's `done` is merely late (or lost)
    if (someone_failed) {
      Status alive = context.watcher->CheckAlive(missing);
      if (!alive.ok()) {
        return Aborted(label, ": ", alive.message(), "; still waiting for ",
                       DescribeParticipants(missing));
      }
    }
    if (expired) {
      double waited = std::chrono::duration<double>(Clock::now() - start).count();
      return DeadlineExceeded(label, ": timed out after ", waited, " s; missing ",
                              DescribeParticipants(missing), " (", arrived.size(), " of ",
                              context.everyone.size(), " arrived)");
    }
  }
  if (!gather) return std::vector<std::string>();
  auto payloads = Gather(context, arrived_prefix, AtLeastOneSecond(deadline));
  if (!payloads.ok()) return payloads.status().WithContext(label);
  return payloads;
}

}  // namespace weightsync::control
