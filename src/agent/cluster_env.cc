#include "agent/cluster_env.h"

#include <cstdlib>

#include "core/config.h"

namespace weightsync::agent {
namespace {

struct Launcher {
  const char* source;
  const char* rank;
  const char* size;
  const char* local;  // may be absent (nullptr)
};

constexpr Launcher kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"pmi", "PMI_RANK", "PMI_SIZE", nullptr},
};

Result<int> Number(const Environment& env, const char* name, int minimum) {
  const std::string text = env(name).value_or("");
  Result<int64_t> n = ParseCount(text);
  if (!n.ok() || *n < minimum || *n > (1 << 24)) {
    return InvalidArgument("environment variable ", name, "='", text, "' is not a ",
                           minimum == 0 ? "rank" : "size");
  }
  return static_cast<int>(*n);
}

}  // namespace

Environment ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<LauncherRank> RankFromEnvironment(const Environment& env) {
  std::string tried;
  for (const Launcher& l : kLaunchers) {
    tried += StrCat(tried.empty() ? "" : ", ", l.rank, "/", l.size);
    if (!env(l.rank) || !env(l.size)) continue;
    LauncherRank out;
    out.source = l.source;
    WS_ASSIGN_OR_RETURN(out.rank, Number(env, l.rank, 0));
    WS_ASSIGN_OR_RETURN(out.world_size, Number(env, l.size, 1));
    if (l.local != nullptr && env(l.local)) {
      WS_ASSIGN_OR_RETURN(out.local_rank, Number(env, l.local, 0));
    }
    if (out.rank >= out.world_size) {
      return InvalidArgument(l.rank, "=", out.rank, " is not below ", l.size, "=", out.world_size);
    }
    return out;
  }
  return NotFound("no launcher rank in the environment (tried ", tried,
                  "); pass the rank explicitly");
}

}  // namespace weightsync::agent
