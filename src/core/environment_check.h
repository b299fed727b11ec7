// Misspelt WEIGHTSYNC_* variables. A misspelt option key is refused, but the environment cannot
// refuse anything: an unknown variable would be silently ignored and the user would run with the
// default they meant to change. Config::FromEnvironment warns once per process about each.
#pragma once

#include <string>
#include <vector>

namespace weightsync {

struct UnknownVariable {
  std::string name;     // "WEIGHTSYNC_PLAN_STAGNG_BUDGET"
  std::string nearest;  // "WEIGHTSYNC_PLAN_STAGING_BUDGET", or empty when nothing is close
};

// The WEIGHTSYNC_* entries of `environment` (NAME=VALUE strings, null-terminated array) that no
// part of weightsync reads. Variables of tests and benchmarks (WEIGHTSYNC_TEST_*,
// WEIGHTSYNC_BENCH_*) are not checked.
std::vector<UnknownVariable> UnknownWeightsyncVariables(const char* const* environment);

// Logs a warning for each unknown variable of this process's environment, once per name.
void WarnAboutUnknownVariables();

}  // namespace weightsync
