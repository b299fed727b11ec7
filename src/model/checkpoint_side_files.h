// The files beside the weights that make a converted directory a checkpoint engines can load:
// config.json (with the quantization_config of the converted weights), generation config,
// tokenizer files and the model code a config's auto_map names.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "convert/conversion_spec.h"
#include "weightsync/status.h"

namespace weightsync {

struct SideFile {
  std::string name;
  std::string contents;
};

// Names copied as they are when the input directory has them (links followed, regular files only).
bool IsCopiedSideFile(std::string_view name);

// config.json's text with "quantization_config" set for the converted tensors: when any is FP8
// block-quantized, {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
// "weight_block_size": [B, B], "modules_to_not_convert": [...]} as transformers'
// FineGrainedFP8Config and vLLM's Fp8Config read it (the list: the module of every 2D weight left
// unquantized, and lm_head); otherwise without that key. `origin` names the file in errors.
Result<std::string> ConvertedConfig(std::string_view config_text, const std::string& origin,
                                    std::span<const ResolvedConversion> converted);

// The side files of `input_directory`; `config` (config.json there unless given) is rewritten by
// ConvertedConfig. No config: the other files only.
Result<std::vector<SideFile>> CollectSideFiles(const std::filesystem::path& input_directory,
                                               const std::filesystem::path& config,
                                               std::span<const ResolvedConversion> converted);

}  // namespace weightsync
