#include "push/push_types.h"

#include <charconv>

namespace weightsync::push {

std::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kIdle:
      return "idle";
    case Phase::kPause:
      return "pause";
    case Phase::kTransfer:
      return "transfer";
    case Phase::kPostUpdate:
      return "post-update";
    case Phase::kCommit:
      return "commit";
    case Phase::kResume:
      return "resume";
  }
  return "unknown";
}

std::string_view InferenceStateName(InferenceState state) {
  switch (state) {
    case InferenceState::kServing:
      return "serving";
    case InferenceState::kPaused:
      return "paused";
    case InferenceState::kReceiving:
      return "receiving";
    case InferenceState::kCommitted:
      return "committed";
    case InferenceState::kTorn:
      return "torn";
  }
  return "unknown";
}

Result<OrchestratorMode> ParseOrchestratorMode(std::string_view name) {
  if (name == "embedded") return OrchestratorMode::kEmbedded;
  if (name == "external") return OrchestratorMode::kExternal;
  if (name == "files") return OrchestratorMode::kFiles;
  return InvalidArgument("push.orchestrator: '", name, "' is not embedded, external or files");
}

std::string_view OrchestratorModeName(OrchestratorMode mode) {
  switch (mode) {
    case OrchestratorMode::kEmbedded:
      return "embedded";
    case OrchestratorMode::kExternal:
      return "external";
    case OrchestratorMode::kFiles:
      return "files";
  }
  return "unknown";
}

Result<PushOptions> PushOptions::FromConfig(const Config& config) {
  PushOptions options;
  WS_ASSIGN_OR_RETURN(options.pause_timeout_s, config.GetSeconds("push.pause_timeout"));
  WS_ASSIGN_OR_RETURN(options.transfer_timeout_s, config.GetSeconds("push.transfer_timeout"));
  WS_ASSIGN_OR_RETURN(options.commit_timeout_s, config.GetSeconds("push.commit_timeout"));
  WS_ASSIGN_OR_RETURN(std::string mode, config.GetString("push.orchestrator"));
  WS_ASSIGN_OR_RETURN(options.orchestrator, ParseOrchestratorMode(mode));
  WS_ASSIGN_OR_RETURN(options.marker_dir, config.GetString("push.marker_dir"));
  if (options.orchestrator == OrchestratorMode::kFiles && options.marker_dir.empty()) {
    return InvalidArgument("push.orchestrator 'files' needs push.marker_dir");
  }
  return options;
}

namespace keys {
namespace {
std::string StepOrNone(std::optional<uint64_t> step) {
  return step ? std::to_string(*step) : std::string("none");
}
}  // namespace

std::string Prefix(std::string_view job) { return StrCat(control::JobPrefix(job), "push/"); }
std::string LastRequested(std::string_view job) { return Prefix(job) + "last_requested"; }
std::string RequestAfter(std::string_view job, std::optional<uint64_t> previous) {
  return StrCat(Prefix(job), "request-after/", StepOrNone(previous));
}
std::string LastOffered(std::string_view job) { return Prefix(job) + "last_offered"; }
std::string OfferAfter(std::string_view job, std::optional<uint64_t> previous) {
  return StrCat(Prefix(job), "offer-after/", StepOrNone(previous));
}
std::string Committed(std::string_view job) { return Prefix(job) + "committed"; }
std::string Failed(std::string_view job, uint64_t step) {
  return StrCat(Prefix(job), "step/", step, "/failed");
}
std::string Outcome(std::string_view job, uint64_t step) {
  return StrCat(Prefix(job), "step/", step, "/outcome");
}
std::string State(std::string_view job, control::ParticipantId id) {
  return StrCat(Prefix(job), "state/", control::ParticipantKey(id));
}
}  // namespace keys

Result<uint64_t> ParseStep(std::string_view text) {
  uint64_t step = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), step);
  if (error != std::errc() || end == text.data()) {
    return DataLoss("not a step number: '", text.substr(0, 64), "'");
  }
  return step;
}

}  // namespace weightsync::push
