// libFuzzer target for config.json reading (DimsFromHfConfig) and the dimension limits.
// Any input must give dimensions or a Status: no exception, crash, overflow (UBSan), or work and
// memory beyond the limits. Accepted dimensions must be within the parameter limit, and the
// closed-form ParameterCount must equal the sum over CanonicalTensors' list.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DWEIGHTSYNC_BUILD_FUZZ=ON -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF
//   ninja -C build-fuzz config_json_fuzz
//   build-fuzz/src/plan/config_json_fuzz -dict=src/plan/fuzz_seeds/config_json.dict \
//       -max_total_time=60 corpus/ src/plan/fuzz_seeds/config_json
#include <cstddef>
#include <cstdint>
#include <string>

#include "plan/model_dims.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto dims = weightsync::DimsFromHfConfig(text, "fuzz/config.json");
  if (!dims.ok()) return 0;
  const int64_t parameters = weightsync::ParameterCount(*dims);
  if (parameters > weightsync::kMaxModelParameters) __builtin_trap();
  // The closed form must count what the list holds. Listing is linear in layers x experts, so
  // only small models are listed: a bigger one adds no new shape, only time under ASan.
  if (dims->layers * (dims->experts + 1) > 20000) return 0;
  auto tensors = weightsync::CanonicalTensors(*dims);
  if (!tensors.ok()) __builtin_trap();  // DimsFromHfConfig promised dimensions that list
  int64_t listed = 0;
  for (const auto& tensor : *tensors) listed += weightsync::NumElements(tensor.shape);
  if (listed != parameters) __builtin_trap();
  return 0;
}
