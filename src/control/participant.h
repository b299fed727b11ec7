// Who takes part in a weightsync job, and where the job's keys live in the store.
//
// A participant is a (role, rank) pair: trainer ranks 0..T-1 and inference ranks 0..I-1. Every key
// a job uses starts with JobPrefix(job_id), so several jobs can share one store:
//   weightsync/jobs/<job>/config                         world sizes, versions (first joiner wins)
//   weightsync/jobs/<job>/member/<role>/<rank>           who holds each rank
//   weightsync/jobs/<job>/round/<name>/<gen>/...         rendezvous rounds
//   weightsync/jobs/<job>/barrier/<name>/<gen>/...       barriers
//   weightsync/jobs/<job>/live/<role>/<rank>             heartbeats (ephemeral keys)
//   weightsync/jobs/<job>/abort                          why the job was aborted, once it was
//
// Threading: values and pure functions.
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync::control {

enum class Role : uint8_t { kTrainer = 0, kInference = 1 };

std::string_view RoleName(Role role);  // "trainer", "inference"
Result<Role> ParseRole(std::string_view name);

struct ParticipantId {
  Role role = Role::kTrainer;
  int rank = 0;
  auto operator<=>(const ParticipantId&) const = default;
  std::string ToString() const;  // "trainer 3"
};

// Job ids and round/barrier names: 1-128 characters of [A-Za-z0-9._-], so they can never reach
// into another job's keys.
Status ValidateName(std::string_view what, std::string_view name);

std::string JobPrefix(std::string_view job_id);
// "trainer/3": the tail of per-participant keys.
std::string ParticipantKey(ParticipantId id);
Result<ParticipantId> ParseParticipantKey(std::string_view key);

// "trainer ranks [1, 3]; inference ranks [0]" (sorted; roles with none are left out).
std::string DescribeParticipants(std::span<const ParticipantId> ids);

}  // namespace weightsync::control
