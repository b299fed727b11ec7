// Vocabulary of the versioned push protocol: phases, inference states, options, and the store keys
// a push uses.
//
// A push moves the weights of one training step (its version) from every trainer rank into every
// inference rank. It runs in phases, each ending in a barrier of all trainer and inference ranks
// whose generation is the step, so an arrival for step N-1 can never satisfy step N:
//   pause        the push is requested; every inference rank pauses its engine
//   transfer     trainers write the weights (the data phase: the caller's work between
//                StartTransfer and FinishTransfer)
//   post-update  inference ranks recompute derived weights (hooks; local, before commit)
//   commit       the final barrier: every rank of the push reached it, nothing failed
//   resume       inference ranks resume serving (local, after commit)
// Keys, under control::JobPrefix(job) + "push/":
//   last_requested           the last step requested (compare-and-set: steps strictly increase)
//   request-after/<prev>     the request that follows step <prev> ("none" before the first)
//   last_offered             external orchestrator mode: the last step trainer rank 0 offered
//   offer-after/<prev>       the offer that follows step <prev>
//   committed                the last committed step
//   step/<N>/failed          why push N failed (the first reporter wins); cancels every wait of N
//   step/<N>/outcome         "committed" or "failed: <reason>" (the first writer wins)
//   state/<role>/<rank>      what each rank is doing, for operators and error messages
//
// Threading: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/participant.h"
#include "core/config.h"
#include "weightsync/status.h"

namespace weightsync::push {

enum class Phase : uint8_t { kIdle, kPause, kTransfer, kPostUpdate, kCommit, kResume };
std::string_view PhaseName(Phase phase);  // "idle", "pause", "transfer", "post-update", ...

// The state of one inference rank:
//   serving -> paused -> receiving -> committed(N) -> serving, and torn(N) after a failed push.
enum class InferenceState : uint8_t { kServing, kPaused, kReceiving, kCommitted, kTorn };
std::string_view InferenceStateName(InferenceState state);

enum class OrchestratorMode : uint8_t {
  kEmbedded,  // trainer rank 0 requests each push itself
  kExternal,  // trainer rank 0 offers the step; an external store client requests it
  kFiles,     // trainer rank 0 waits for broadcasts/step_N/TRANSFER_READY, then requests
};
Result<OrchestratorMode> ParseOrchestratorMode(std::string_view name);
std::string_view OrchestratorModeName(OrchestratorMode mode);

struct PushOptions {
  double pause_timeout_s = DefaultSeconds("push.pause_timeout");
  double transfer_timeout_s = DefaultSeconds("push.transfer_timeout");
  double commit_timeout_s = DefaultSeconds("push.commit_timeout");
  OrchestratorMode orchestrator = OrchestratorMode::kEmbedded;
  std::string marker_dir;  // empty: no file markers

  // From push.pause_timeout, push.transfer_timeout, push.commit_timeout, push.orchestrator and
  // push.marker_dir.
  static Result<PushOptions> FromConfig(const Config& config);
};

// Seconds each phase of the last push took on this rank (0 for phases it did not reach).
struct PushTimings {
  double pause_s = 0;
  double transfer_s = 0;
  double post_update_s = 0;
  double commit_s = 0;
  double resume_s = 0;
  double total_s = 0;
};

namespace keys {
std::string Prefix(std::string_view job);
std::string LastRequested(std::string_view job);
std::string RequestAfter(std::string_view job, std::optional<uint64_t> previous);
std::string LastOffered(std::string_view job);
std::string OfferAfter(std::string_view job, std::optional<uint64_t> previous);
std::string Committed(std::string_view job);
std::string Failed(std::string_view job, uint64_t step);
std::string Outcome(std::string_view job, uint64_t step);
std::string State(std::string_view job, control::ParticipantId id);
}  // namespace keys

// Decimal step parsing for store values ("12"; leading digits of "12 by trainer 0").
Result<uint64_t> ParseStep(std::string_view text);

}  // namespace weightsync::push
