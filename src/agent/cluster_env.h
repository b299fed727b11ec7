// Where a process sits in its launcher's job: the rank and world size that torchrun, SLURM or
// Open MPI put in the environment, so agents need not be told explicitly.
//
// Threading: reads the environment (getenv) only.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "weightsync/status.h"

namespace weightsync::agent {

struct LauncherRank {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;   // on this host: which GPU a rank usually drives
  std::string source;   // "torchrun", "slurm", "openmpi", "pmi"
};

// Looks up an environment variable (tests pass their own).
using Environment = std::function<std::optional<std::string>(const std::string& name)>;
Environment ProcessEnvironment();

// The first launcher whose variables are all set: torchrun (RANK, WORLD_SIZE, LOCAL_RANK),
// Open MPI (OMPI_COMM_WORLD_*), SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), PMI (PMI_RANK,
// PMI_SIZE). kNotFound naming every variable tried when none is; kInvalidArgument naming the
// variable when one is malformed or out of range.
Result<LauncherRank> RankFromEnvironment(const Environment& env = ProcessEnvironment());

}  // namespace weightsync::agent
