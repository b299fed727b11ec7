#include "control/rendezvous.h"

#include <unistd.h>

#include <map>

#include "control/auth.h"
#include "core/log.h"

namespace weightsync::control {
namespace {

// The job config as stored: "name=value" lines, readable with `weightsync store get`.
std::string EncodeConfig(const Membership& m) {
  return StrCat("trainer_world_size=", m.trainer_world_size,
                "\ninference_world_size=", m.inference_world_size,
                "\nprotocol_version=", m.protocol_version, "\nspec_hash=", m.spec_hash,
                "\ndeclared_by=", m.id.ToString(), "\n");
}

std::map<std::string, std::string> DecodeConfig(std::string_view text) {
  std::map<std::string, std::string> fields;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    size_t eq = line.find('=');
    if (eq != std::string_view::npos) {
      fields[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return fields;
}

// Names this process for duplicate-rank errors: host, pid and a random instance id (threads of one
// process, as in tests, differ only in the last).
std::string DescribeThisProcess() {
  char host[256] = "unknown-host";
  ::gethostname(host, sizeof(host) - 1);
  std::string instance = "?";
  if (auto nonce = RandomNonce(); nonce.ok()) {
    instance.clear();
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 4; ++i) {
      auto byte = static_cast<uint8_t>((*nonce)[static_cast<size_t>(i)]);
      instance += kHex[byte >> 4];
      instance += kHex[byte & 15];
    }
  }
  return StrCat("pid ", ::getpid(), " on ", host, " (instance ", instance, ")");
}

Status ValidateMembership(const Membership& m) {
  WS_RETURN_IF_ERROR(ValidateName("job id", m.job_id));
  if (m.trainer_world_size < 0 || m.inference_world_size < 0 ||
      m.trainer_world_size + m.inference_world_size < 1) {
    return InvalidArgument("job ", m.job_id,
                           ": world sizes must be >= 0 with at least one "
                           "participant (trainer ",
                           m.trainer_world_size, ", inference ", m.inference_world_size, ")");
  }
  int world = m.id.role == Role::kTrainer ? m.trainer_world_size : m.inference_world_size;
  if (m.id.rank < 0 || m.id.rank >= world) {
    return InvalidArgument("job ", m.job_id, ": ", RoleName(m.id.role), " rank ", m.id.rank,
                           " is outside the ", RoleName(m.id.role), " world size ", world);
  }
  if (m.spec_hash.find('\n') != std::string::npos) {
    return InvalidArgument("job ", m.job_id, ": spec hash must be a single line");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Rendezvous>> Rendezvous::Join(StoreClient& client, Membership me,
                                                     Deadline deadline) {
  WS_RETURN_IF_ERROR(ValidateMembership(me));
  const std::string prefix = JobPrefix(me.job_id);

  // 1. The job config: first joiner defines it, everyone else must match.
  WS_ASSIGN_OR_RETURN(CasResult config, client.CompareAndSet(prefix + "config", std::nullopt,
                                                             EncodeConfig(me), deadline));
  if (!config.swapped && config.current) {
    auto theirs = DecodeConfig(*config.current);
    auto mine = DecodeConfig(EncodeConfig(me));
    std::string disagreements;
    for (const char* field :
         {"trainer_world_size", "inference_world_size", "protocol_version", "spec_hash"}) {
      if (theirs[field] != mine[field]) {
        disagreements += StrCat(disagreements.empty() ? "" : ", ", field, " '", mine[field], "' (",
                                theirs["declared_by"], " declared '", theirs[field], "')");
      }
    }
    if (!disagreements.empty()) {
      std::string why = StrCat("job ", me.job_id, ": ", me.id.ToString(), " declares ",
                               disagreements, "; refusing ", me.id.ToString());
      // Everyone already waiting on this job would otherwise hang until their deadlines.
      (void)client.CompareAndSet(AbortKey(me.job_id), std::nullopt, why, deadline);
      return FailedPrecondition(why);
    }
  }

  // 2. The rank itself.
  const std::string who = DescribeThisProcess();
  WS_ASSIGN_OR_RETURN(CasResult member,
                      client.CompareAndSet(StrCat(prefix, "member/", ParticipantKey(me.id)),
                                           std::nullopt, who, deadline));
  bool rejoined = false;
  if (!member.swapped && me.take_over_dead_holder && member.current) {
    // The holder's heartbeat key is ephemeral: gone when its connection closed (it died).
    auto beat = client.Get(LivenessKey(me.job_id, me.id), deadline);
    const bool dead = (!beat.ok() && beat.status().code() == StatusCode::kNotFound) ||
                      (beat.ok() && *beat == "stopped");
    if (!beat.ok() && beat.status().code() != StatusCode::kNotFound) return beat.status();
    if (dead) {
      const std::string previous = *member.current;
      WS_ASSIGN_OR_RETURN(member, client.CompareAndSet(StrCat(prefix, "member/",
                                                              ParticipantKey(me.id)),
                                                       previous, who, deadline));
      rejoined = member.swapped;
      if (rejoined) {
        Log(LogLevel::kWarning, "job ", me.job_id, ": ", me.id.ToString(), " rejoined: ", who,
            " takes over from ", previous, ", whose heartbeat is gone");
      }
    }
  }
  if (!member.swapped && !rejoined) {
    return AlreadyExists("job ", me.job_id, ": ", me.id.ToString(), " is already taken by ",
                         member.current.value_or("?"), "; refusing ", who);
  }

  CollectiveContext context;
  context.client = &client;
  context.job_id = me.job_id;
  context.me = me.id;
  for (int r = 0; r < me.trainer_world_size; ++r) context.everyone.push_back({Role::kTrainer, r});
  for (int r = 0; r < me.inference_world_size; ++r) {
    context.everyone.push_back({Role::kInference, r});
  }
  auto rendezvous = std::unique_ptr<Rendezvous>(new Rendezvous(std::move(me), std::move(context)));
  rendezvous->rejoined_ = rejoined;
  return rendezvous;
}

Result<std::vector<RoundEntry>> Rendezvous::Round(std::string_view name, std::string_view payload,
                                                  Deadline deadline) {
  auto it = next_generation_.try_emplace(std::string(name), 0).first;
  WS_ASSIGN_OR_RETURN(auto payloads, ArriveAndWait(context_, "round", name, it->second, payload,
                                                   /*gather=*/true, deadline));
  ++it->second;
  std::vector<RoundEntry> entries;
  entries.reserve(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    entries.push_back({context_.everyone[i], std::move(payloads[i])});
  }
  return entries;
}

Status Rendezvous::Abort(std::string_view reason, Deadline deadline) {
  std::string why = StrCat(me_.id.ToString(), ": ", reason);
  return context_.client->CompareAndSet(AbortKey(me_.job_id), std::nullopt, why, deadline).status();
}

}  // namespace weightsync::control
