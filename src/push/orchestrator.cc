#include "push/orchestrator.h"

#include "control/deadline.h"
#include "push/push_requests.h"

namespace weightsync::push {

Result<OrchestratedPush> OrchestrateOnePush(control::StoreClient& client,
                                            const OrchestrateOptions& options,
                                            std::optional<uint64_t> after) {
  const std::string context = StrCat("orchestrator of job ", options.job);
  auto offered =
      WaitForOffer(client, options.job, after, control::DeadlineIn(options.offer_timeout_s));
  if (!offered.ok()) {
    return offered.status().WithContext(StrCat(context,
                                               ": waiting for the trainer's offer after step ",
                                               after ? std::to_string(*after) : "none"));
  }
  OrchestratedPush push;
  push.step = *offered;
  const std::string step_context = StrCat(context, ": push step ", push.step);
  if (options.before_request) {
    WS_RETURN_IF_ERROR(options.before_request(push.step).WithContext(step_context));
  }
  const auto start = control::Clock::now();
  const control::Deadline deadline = control::DeadlineIn(options.outcome_timeout_s);
  WS_RETURN_IF_ERROR(RequestPush(client, options.job, push.step, "orchestrator", deadline)
                         .status()
                         .WithContext(step_context));
  auto outcome = WaitForOutcome(client, options.job, push.step, deadline);
  if (!outcome.ok()) {
    return outcome.status().WithContext(StrCat(step_context, ": waiting for the outcome"));
  }
  push.seconds = std::chrono::duration<double>(control::Clock::now() - start).count();
  push.outcome = *outcome;
  push.committed = *outcome == "committed";
  return push;
}

}  // namespace weightsync::push
