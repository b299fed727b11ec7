#include "control/participant.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace weightsync::control {

std::string_view RoleName(Role role) { return role == Role::kTrainer ? "trainer" : "inference"; }

Result<Role> ParseRole(std::string_view name) {
  if (name == "trainer") return Role::kTrainer;
  if (name == "inference") return Role::kInference;
  return InvalidArgument("role '", name, "' is neither 'trainer' nor 'inference'");
}

std::string ParticipantId::ToString() const { return StrCat(RoleName(role), " ", rank); }

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return InvalidArgument(what, " '", name, "' must be 1-128 characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgument(what, " '", name, "' may only use A-Z a-z 0-9 . _ -");
  }
  return Status::Ok();
}

std::string JobPrefix(std::string_view job_id) { return StrCat("weightsync/jobs/", job_id, "/"); }

std::string ParticipantKey(ParticipantId id) { return StrCat(RoleName(id.role), "/", id.rank); }

Result<ParticipantId> ParseParticipantKey(std::string_view key) {
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return InvalidArgument("'", key, "' is not role/rank");
  ParticipantId id;
  WS_ASSIGN_OR_RETURN(id.role, ParseRole(key.substr(0, slash)));
  std::string_view rank = key.substr(slash + 1);
  auto [end, ec] = std::from_chars(rank.data(), rank.data() + rank.size(), id.rank);
  if (ec != std::errc() || end != rank.data() + rank.size() || id.rank < 0) {
    return InvalidArgument("'", key, "' has no valid rank");
  }
  return id;
}

std::string DescribeParticipants(std::span<const ParticipantId> ids) {
  std::vector<ParticipantId> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (Role role : {Role::kTrainer, Role::kInference}) {
    std::string ranks;
    for (const auto& id : sorted) {
      if (id.role != role) continue;
      ranks += ranks.empty() ? "" : ", ";
      ranks += std::to_string(id.rank);
    }
    if (ranks.empty()) continue;
    out += out.empty() ? "" : "; ";
    out += StrCat(RoleName(role), " ranks [", ranks, "]");
  }
  return out.empty() ? "nobody" : out;
}

}  // namespace weightsync::control
