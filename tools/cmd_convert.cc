// `weightsync convert`: an offline Hugging Face checkpoint -> inference layout converter.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "conversion_flags.h"
#include "io/file_util.h"
#include "model/checkpoint_conversion.h"
#include "source_shape_check.h"

namespace weightsync::cli {
namespace {

struct ConvertFlags : ConversionFlags {
  std::string config;
  std::string max_shard_size;
  bool overwrite = false;
};

constexpr size_t kMaxConfigSize = 64ull << 20;

// The shape check, from --config or the input directory's config.json when there is one.
Result<SourceCheck> ShapeCheckFor(const ModelSpec& model, const ConvertFlags& flags) {
  std::filesystem::path config = flags.config;
  std::error_code error;
  if (config.empty() && std::filesystem::is_directory(flags.input, error)) {
    config = std::filesystem::path(flags.input) / "config.json";
    if (!std::filesystem::exists(config, error)) config.clear();
  }
  std::optional<std::string> text;
  if (!config.empty()) {
    WS_ASSIGN_OR_RETURN(text, ReadSmallFile(config, kMaxConfigSize));
  }
  return SourceShapeCheck(model, flags.source_format, text, config.string());
}

Result<CheckpointConversionOptions> OptionsFor(const ModelSpec& model, const ConvertFlags& flags) {
  WS_ASSIGN_OR_RETURN(Config config, ConversionConfig(flags));
  if (!flags.max_shard_size.empty()) {
    WS_RETURN_IF_ERROR(config.Set("convert.max_shard_size", flags.max_shard_size));
  }
  CheckpointConversionOptions options;
  options.plan = {flags.source_format, flags.target_format, flags.ignore, flags.partial};
  options.max_shard_bytes = *config.GetBytes("convert.max_shard_size");
  options.threads = static_cast<int>(*config.GetCount("convert.threads"));
  options.overwrite = flags.overwrite;
  WS_ASSIGN_OR_RETURN(options.check_sources, ShapeCheckFor(model, flags));
  options.config = flags.config;
  return options;
}

void DrawProgress(const ConversionProgress& p) {
  constexpr int kWidth = 30;
  double fraction =
      p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
  int filled = static_cast<int>(fraction * kWidth);
  std::fprintf(stderr, "\r[%.*s%*s] %3d%%  %lld/%lld tensors", filled,
               "##############################", kWidth - filled, "",
               static_cast<int>(fraction * 100), static_cast<long long>(p.tensors_done),
               static_cast<long long>(p.tensors_total));
  if (p.tensors_done == p.tensors_total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void PrintJson(const ModelSpec& model, const ConvertFlags& flags, const ConversionSummary& s,
               double gbps) {
  nlohmann::json out = {{"model", model.name},
                        {"model_spec_hash", model.hash},
                        {"source_format", flags.source_format},
                        {"target_format", flags.target_format},
                        {"source_tensors", s.source_tensors},
                        {"destination_tensors", s.destination_tensors},
                        {"bytes_read", s.bytes_read},
                        {"bytes_written", s.bytes_written},
                        {"seconds", s.seconds},
                        {"convert_seconds", s.convert_seconds},
                        {"commit_seconds", s.commit_seconds},
                        {"gb_per_second", gbps},
                        {"kernels", s.kernels},
                        {"ignored", s.ignored},
                        {"output", flags.output},
                        {"output_files", s.output_files},
                        {"side_files", s.side_files}};
  std::cout << out.dump(2) << "\n";
}

void PrintText(const ModelSpec& model, const ConvertFlags& flags, const ConversionSummary& s,
               double gbps) {
  std::printf("converted %s (%s -> %s): %lld source tensors -> %lld tensors\n", model.name.c_str(),
              flags.source_format.c_str(), flags.target_format.c_str(),
              static_cast<long long>(s.source_tensors),
              static_cast<long long>(s.destination_tensors));
  std::printf(
      "read %.3f GB, wrote %.3f GB in %.2f s (%.2f GB/s read+write, %s kernels; "
      "%.2f s converting, %.2f s flushing to disk)\n",
      static_cast<double>(s.bytes_read) / 1e9, static_cast<double>(s.bytes_written) / 1e9,
      s.seconds, gbps, s.kernels.c_str(), s.convert_seconds, s.commit_seconds);
  if (!s.ignored.empty()) std::printf("ignored %zu source tensors\n", s.ignored.size());
  std::printf("output: %s (%zu file%s)\n", flags.output.c_str(), s.output_files.size(),
              s.output_files.size() == 1 ? "" : "s");
  if (!s.side_files.empty()) {
    std::string names;
    for (const std::string& name : s.side_files) names += (names.empty() ? "" : ", ") + name;
    std::printf("copied beside it: %s\n", names.c_str());
  }
}

int RunConvert(const ConvertFlags& flags) {
  auto fail = [](const Status& status) {
    std::cerr << "weightsync convert: " << status.ToString() << "\n";
    return 1;
  };
  Result<ModelSpec> model = LoadModelSpec(flags);
  if (!model.ok()) return fail(model.status());
  Result<CheckpointConversionOptions> options = OptionsFor(*model, flags);
  if (!options.ok()) return fail(options.status());
  if (!flags.json && isatty(STDERR_FILENO)) options->on_progress = DrawProgress;

  Result<ConversionSummary> summary =
      ConvertCheckpoint(*model, flags.input, flags.output, *options);
  if (!summary.ok()) return fail(summary.status());
  const ConversionSummary& s = *summary;
  double gbps =
      s.seconds > 0 ? static_cast<double>(s.bytes_read + s.bytes_written) / s.seconds / 1e9 : 0;
  (flags.json ? PrintJson : PrintText)(*model, flags, s, gbps);
  return 0;
}

}  // namespace

void AddConvertCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ConvertFlags>();
  auto* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face checkpoint into an inference engine's layout");
  AddConversionFlags(*cmd, *flags,
                     "A .safetensors file, or a directory for a sharded checkpoint (with the "
                     "input's config.json and tokenizer files); never the input, inside it or "
                     "around it");
  cmd->add_option("--config", flags->config,
                  "The model's config.json (default: the input directory's): source shapes are "
                  "checked against its dimensions, and it is copied into a directory output");
  cmd->add_option("--max-shard-size", flags->max_shard_size,
                  "Largest output file for directory outputs, e.g. 5GiB (default: "
                  "convert.max_shard_size)");
  cmd->add_flag("--overwrite", flags->overwrite,
                "Replace an existing output that weightsync wrote (a directory with "
                "weightsync-output.json and only the files it lists, or a .safetensors file "
                "marked written_by=weightsync); anything else is refused, nothing deleted");
  cmd->callback([flags, &exit_code] { exit_code = RunConvert(*flags); });
}

}  // namespace weightsync::cli
