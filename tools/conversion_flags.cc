#include "conversion_flags.h"

#include <set>

namespace weightsync::cli {
namespace {

// "hf, hf-fused, torchtitan": every source (or target) format of the built-in model specs.
std::string BuiltinFormats(bool targets) {
  std::set<std::string> names;
  const ModelSpecLibrary library = ModelSpecLibrary::Builtin();
  for (const std::string& model : library.ModelNames()) {
    Result<ModelSpec> spec = library.Load(model);
    if (!spec.ok()) continue;
    if (targets) {
      for (const auto& [name, format] : spec->target_formats) names.insert(name);
    } else {
      for (const auto& [name, format] : spec->source_formats) names.insert(name);
    }
  }
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

void AddConversionFlags(CLI::App& cmd, ConversionFlags& flags, const std::string& output_help) {
  cmd.add_option("--model", flags.model, "Model spec name (see `weightsync info`) or a .json file")
      ->required();
  cmd.add_option("--source-format", flags.source_format, BuiltinFormats(/*targets=*/false))
      ->capture_default_str();
  cmd.add_option("--target-format", flags.target_format, BuiltinFormats(/*targets=*/true))
      ->capture_default_str();
  cmd.add_option("--input", flags.input, "A .safetensors file or a checkpoint directory")
      ->required();
  cmd.add_option("--output", flags.output, output_help)->required();
  cmd.add_option("--ignore", flags.ignore,
                 "Skip source tensors whose whole name matches this regular expression "
                 "(repeatable), e.g. 'model\\.layers\\.78\\..*' for GLM-5's MTP layer");
  cmd.add_option("--spec-dir", flags.spec_dirs, "Extra directory of model spec files (repeatable)");
  cmd.add_option("--threads", flags.threads, "Conversion threads (default: convert.threads)");
  cmd.add_flag("--partial", flags.partial,
               "The input is part of a model (a shard, some layers): do not require every "
               "tensor the model has; fused tensors still need all their sources");
  cmd.add_flag("--json", flags.json, "Print the summary as one JSON object");
}

Result<ModelSpec> LoadModelSpec(const ConversionFlags& flags) {
  WS_ASSIGN_OR_RETURN(ModelSpecLibrary library, ModelSpecLibrary::FromEnvironment());
  for (const auto& dir : flags.spec_dirs) WS_RETURN_IF_ERROR(library.AddDirectory(dir));
  return library.Load(flags.model);
}

Result<Config> ConversionConfig(const ConversionFlags& flags) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  if (!flags.threads.empty()) WS_RETURN_IF_ERROR(config.Set("convert.threads", flags.threads));
  return config;
}

}  // namespace weightsync::cli
