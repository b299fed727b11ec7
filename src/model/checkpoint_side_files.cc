#include "model/checkpoint_side_files.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"

namespace weightsync {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kConfigName = "config.json";
// tokenizer.json runs to tens of MB for large vocabularies; nothing here is near this.
constexpr size_t kMaxSideFileSize = 512ull << 20;

constexpr std::array<std::string_view, 11> kCopiedNames = {"generation_config.json",
                                                           "tokenizer.json",
                                                           "tokenizer_config.json",
                                                           "special_tokens_map.json",
                                                           "added_tokens.json",
                                                           "tokenizer.model",
                                                           "vocab.json",
                                                           "vocab.txt",
                                                           "merges.txt",
                                                           "chat_template.jinja",
                                                           "chat_template.json"};
// Remote code a config's auto_map may name (configuration_deepseek.py, ...).
constexpr std::array<std::string_view, 3> kCodePrefixes = {"configuration_", "modeling_",
                                                           "tokenization_"};

nlohmann::ordered_json Fp8Config(int64_t block_size, std::set<std::string> unquantized) {
  unquantized.insert("lm_head");  // transformers adds none of its defaults once a list is given
  return {{"quant_method", "fp8"},
          {"fmt", "e4m3"},
          {"activation_scheme", "dynamic"},
          {"weight_block_size", {block_size, block_size}},
          {"modules_to_not_convert", unquantized}};
}

}  // namespace

bool IsCopiedSideFile(std::string_view name) {
  if (std::find(kCopiedNames.begin(), kCopiedNames.end(), name) != kCopiedNames.end()) return true;
  return name.ends_with(".py") &&
         std::any_of(kCodePrefixes.begin(), kCodePrefixes.end(),
                     [&](std::string_view prefix) { return name.starts_with(prefix); });
}

Result<std::string> ConvertedConfig(std::string_view config_text, const std::string& origin,
                                    std::span<const ResolvedConversion> converted) {
  nlohmann::ordered_json config =
      nlohmann::ordered_json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return InvalidArgument("config ", origin, ": not a JSON object");
  }
  int64_t block_size = 0;
  std::set<std::string> unquantized;
  for (const ResolvedConversion& r : converted) {
    const std::string& name = r.spec.destination;
    if (!r.spec.quantization.quantized()) {
      if (r.shape.size() == 2 && name.ends_with(".weight")) {
        unquantized.insert(name.substr(0, name.size() - std::string_view(".weight").size()));
      }
      continue;
    }
    if (block_size != 0 && r.spec.quantization.block_size != block_size) {
      return Unimplemented("config ", origin, ": ", name, " has ", r.spec.quantization.block_size,
                           "-blocks beside ", block_size, "-blocks; quantization_config has one");
    }
    block_size = r.spec.quantization.block_size;
  }
  config.erase("quantization_config");  // the source's weights are not the output's
  if (block_size != 0) config["quantization_config"] = Fp8Config(block_size, unquantized);
  try {  // a config that parsed holds valid UTF-8 only, so dump cannot throw
    return config.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("config ", origin, ": ", e.what());
  }
}

Result<std::vector<SideFile>> CollectSideFiles(const fs::path& input_directory,
                                               const fs::path& config,
                                               std::span<const ResolvedConversion> converted) {
  std::vector<SideFile> files;
  const fs::path config_path = config.empty() ? input_directory / kConfigName : config;
  std::error_code error;
  if (!config.empty() || fs::exists(config_path, error)) {
    WS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(config_path, kMaxSideFileSize));
    WS_ASSIGN_OR_RETURN(std::string rewritten,
                        ConvertedConfig(text, config_path.string(), converted));
    files.push_back({std::string(kConfigName), std::move(rewritten)});
  }
  if (input_directory.empty()) return files;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(input_directory, error)) {
    std::string name = entry.path().filename().string();
    if (IsCopiedSideFile(name)) names.push_back(std::move(name));
  }
  if (error) return ErrnoStatus("list directory", input_directory, error.value());
  std::sort(names.begin(), names.end());
  for (std::string& name : names) {
    WS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(input_directory / name, kMaxSideFileSize));
    files.push_back({std::move(name), std::move(text)});
  }
  return files;
}

}  // namespace weightsync
