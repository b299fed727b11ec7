#include "plan/gpu_memory.h"

#include <limits>
#include <set>

#include "core/config.h"

namespace weightsync {
namespace {

// Memory as sold, in decimal GB. A driver reports a little more, but the CUDA context, the KV
// cache and activations need several GB of it, so the nominal figure is the bound that matters.
constexpr std::pair<std::string_view, int64_t> kGpus[] = {
    {"h100", 80'000'000'000},
    {"h200", 141'000'000'000},
};

}  // namespace

Result<int64_t> ParseGpuMemory(std::string_view text) {
  for (auto [name, bytes] : kGpus) {
    if (text == name) return bytes;
  }
  Result<uint64_t> bytes = ParseBytes(text);
  if (!bytes.ok() || *bytes == 0 ||
      *bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument("'", text, "' is neither a GPU (", KnownGpuMemoryText(),
                           ") nor a positive size (e.g. 96GB)");
  }
  return static_cast<int64_t>(*bytes);
}

std::string KnownGpuMemoryText() {
  std::string text;
  for (auto [name, bytes] : kGpus) {
    text += StrCat(text.empty() ? "" : ", ", name, " (", bytes / 1'000'000'000, " GB)");
  }
  return text;
}

std::vector<int> InferenceRanksOverMemory(const TransferPlan& plan, int64_t gpu_memory_bytes) {
  std::set<int> over;
  const int64_t ranks = plan.inference_ranks();
  for (size_t i = 0; i < plan.inference_bytes.size(); ++i) {
    if (plan.inference_bytes[i] > gpu_memory_bytes) {
      over.insert(static_cast<int>(static_cast<int64_t>(i) % ranks));
    }
  }
  return {over.begin(), over.end()};
}

std::string RankRangesText(const std::vector<int>& ranks) {
  std::string text;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    text += StrCat(text.empty() ? "" : ", ", ranks[i]);
    if (j > i) text += StrCat("-", ranks[j]);
    i = j + 1;
  }
  return text;
}

}  // namespace weightsync
