#include "core/environment_check.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <string_view>

#include "core/config.h"
#include "core/log.h"

extern char** environ;

namespace weightsync {
namespace {

// Read by weightsync outside the config table (tokens, paths, the Python package's library).
constexpr std::string_view kOtherVariables[] = {"WEIGHTSYNC_STORE_TOKEN", "WEIGHTSYNC_MODEL_PATH",
                                                "WEIGHTSYNC_LIBRARY"};
constexpr std::string_view kUncheckedPrefixes[] = {"WEIGHTSYNC_TEST_", "WEIGHTSYNC_BENCH_"};

std::vector<std::string> KnownVariables() {
  std::vector<std::string> known(std::begin(kOtherVariables), std::end(kOtherVariables));
  for (const auto& option : ConfigTable()) known.push_back(ConfigEnvironmentName(option.name));
  return known;
}

// Edit distance (insertions, deletions, substitutions), for "did you mean".
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string Nearest(std::string_view name, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = 4;  // beyond a few edits a suggestion is a guess
  for (const auto& candidate : known) {
    size_t d = Distance(name, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  return best;
}

}  // namespace

std::vector<UnknownVariable> UnknownWeightsyncVariables(const char* const* environment) {
  std::vector<UnknownVariable> unknown;
  if (environment == nullptr) return unknown;
  const std::vector<std::string> known = KnownVariables();
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string_view name = text.substr(0, text.find('='));
    if (!name.starts_with("WEIGHTSYNC_")) continue;
    if (std::any_of(std::begin(kUncheckedPrefixes), std::end(kUncheckedPrefixes),
                    [&](std::string_view p) { return name.starts_with(p); })) {
      continue;
    }
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    unknown.push_back({std::string(name), Nearest(name, known)});
  }
  return unknown;
}

void WarnAboutUnknownVariables() {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard lock(mutex);
  for (const auto& variable : UnknownWeightsyncVariables(environ)) {
    if (!warned.insert(variable.name).second) continue;
    Log(LogLevel::kWarning, "environment variable ", variable.name,
        " is not a weightsync setting and is ignored",
        variable.nearest.empty() ? std::string(" (`weightsync info` lists the settings)")
                                 : StrCat("; did you mean ", variable.nearest, "?"));
  }
}

}  // namespace weightsync
