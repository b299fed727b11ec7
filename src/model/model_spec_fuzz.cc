// libFuzzer target for model spec files: one document added to the built-in library, then
// loaded (so `extends` chains into the built-in specs and merging run too). Any input must give a
// spec or a Status: no exception, crash or undefined behaviour; a spec that loads must load again
// to the same hash, and hold only rules the converter can run.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DWEIGHTSYNC_BUILD_FUZZ=ON -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF
//   ninja -C build-fuzz model_spec_fuzz
//   build-fuzz/src/model/model_spec_fuzz -dict=src/model/fuzz_seeds/model_spec.dict \
//       -max_total_time=60 corpus/ src/model/fuzz_seeds/model_spec
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model_spec.h"

namespace {

bool RulesAreUsable(const weightsync::ModelSpec& spec) {
  for (const auto& [name, format] : spec.target_formats) {
    for (const auto& rule : format.tensors) {
      if (rule.sources.empty() || (rule.cat_dim != 0 && rule.cat_dim != 1)) return false;
    }
  }
  for (const auto& [name, format] : spec.source_formats) {
    for (const auto& rule : format.rules) {
      if (rule.chunks < 1 || rule.chunk < 0 || rule.chunk >= rule.chunks) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const weightsync::ModelSpecLibrary builtin = weightsync::ModelSpecLibrary::Builtin();
  const std::string text(reinterpret_cast<const char*>(data), size);
  weightsync::ModelSpecLibrary library = builtin;
  if (!library.AddDocument(text, "fuzz.json").ok()) return 0;
  // AddDocument accepted it: valid JSON naming its model with a string. Load that model.
  const std::string name = nlohmann::json::parse(text)["model"].get<std::string>();
  auto spec = library.Load(name);
  if (!spec.ok()) return 0;
  auto again = library.Load(name);
  if (!again.ok() || again->hash != spec->hash || !RulesAreUsable(*spec)) __builtin_trap();
  return 0;
}
