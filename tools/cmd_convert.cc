// `weightsync convert`: an offline Hugging Face checkpoint -> inference layout converter.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/config.h"
#include "model/checkpoint_conversion.h"

namespace weightsync::cli {
namespace {

struct ConvertFlags {
  std::string model;
  std::string source_format = "hf";
  std::string target_format = "vllm";
  std::string input;
  std::string output;
  std::vector<std::string> ignore;
  std::vector<std::string> spec_dirs;
  std::string threads;
  std::string max_shard_size;
  bool overwrite = false;
  bool json = false;
  bool partial = false;
};

void DrawProgress(const ConversionProgress& p) {
  constexpr int kWidth = 30;
  double fraction = p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
  int filled = static_cast<int>(fraction * kWidth);
  std::fprintf(stderr, "\r[%.*s%*s] %3d%%  %lld/%lld tensors", filled,
               "##############################", kWidth - filled, "",
               static_cast<int>(fraction * 100), static_cast<long long>(p.tensors_done),
               static_cast<long long>(p.tensors_total));
  if (p.tensors_done == p.tensors_total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

int RunConvert(const ConvertFlags& flags) {
  auto fail = [](const Status& status) {
    std::cerr << "weightsync convert: " << status.ToString() << "\n";
    return 1;
  };
  Result<Config> config = Config::FromEnvironment();
  if (!config.ok()) return fail(config.status());
  if (!flags.threads.empty()) {
    if (Status s = config->Set("convert.threads", flags.threads); !s.ok()) return fail(s);
  }
  if (!flags.max_shard_size.empty()) {
    if (Status s = config->Set("convert.max_shard_size", flags.max_shard_size); !s.ok()) return fail(s);
  }
  Result<ModelSpecLibrary> library = ModelSpecLibrary::FromEnvironment();
  if (!library.ok()) return fail(library.status());
  for (const auto& dir : flags.spec_dirs) {
    if (Status s = library->AddDirectory(dir); !s.ok()) return fail(s);
  }
  Result<ModelSpec> model = library->Load(flags.model);
  if (!model.ok()) return fail(model.status());

  CheckpointConversionOptions options;
  options.plan = {flags.source_format, flags.target_format, flags.ignore, flags.partial};
  options.max_shard_bytes = *config->GetBytes("convert.max_shard_size");
  options.threads = static_cast<int>(*config->GetCount("convert.threads"));
  options.overwrite = flags.overwrite;
  if (!flags.json && isatty(STDERR_FILENO)) options.on_progress = DrawProgress;

  Result<ConversionSummary> summary = ConvertCheckpoint(*model, flags.input, flags.output, options);
  if (!summary.ok()) return fail(summary.status());
  const ConversionSummary& s = *summary;
  double gbps = s.seconds > 0 ? static_cast<double>(s.bytes_read + s.bytes_written) / s.seconds / 1e9 : 0;
  if (flags.json) {
    nlohmann::json out = {{"model", model->name},
                          {"model_spec_hash", model->hash},
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
                          {"output_files", s.output_files}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("converted %s (%s -> %s): %lld source tensors -> %lld tensors\n", model->name.c_str(),
              flags.source_format.c_str(), flags.target_format.c_str(),
              static_cast<long long>(s.source_tensors), static_cast<long long>(s.destination_tensors));
  std::printf("read %.3f GB, wrote %.3f GB in %.2f s (%.2f GB/s read+write, %s kernels; "
              "%.2f s converting, %.2f s flushing to disk)\n",
              static_cast<double>(s.bytes_read) / 1e9, static_cast<double>(s.bytes_written) / 1e9,
              s.seconds, gbps, s.kernels.c_str(), s.convert_seconds, s.commit_seconds);
  if (!s.ignored.empty()) std::printf("ignored %zu source tensors\n", s.ignored.size());
  std::printf("output: %s (%zu file%s)\n", flags.output.c_str(), s.output_files.size(),
              s.output_files.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace

void AddConvertCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ConvertFlags>();
  auto* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face checkpoint into an inference engine's layout");
  cmd->add_option("--model", flags->model, "Model spec name (see `weightsync info`) or a .json file")
      ->required();
  cmd->add_option("--source-format", flags->source_format, "hf, hf-fused or torchtitan")
      ->capture_default_str();
  cmd->add_option("--target-format", flags->target_format, "vllm or hf-fp8")->capture_default_str();
  cmd->add_option("--input", flags->input, "A .safetensors file or a checkpoint directory")
      ->required();
  cmd->add_option("--output", flags->output,
                  "A .safetensors file, or a directory for a sharded checkpoint")
      ->required();
  cmd->add_option("--ignore", flags->ignore,
                  "Skip source tensors whose whole name matches this regular expression "
                  "(repeatable), e.g. 'model\\.layers\\.78\\..*' for GLM-5's MTP layer");
  cmd->add_option("--spec-dir", flags->spec_dirs, "Extra directory of model spec files (repeatable)");
  cmd->add_option("--threads", flags->threads, "Conversion threads (default: convert.threads)");
  cmd->add_option("--max-shard-size", flags->max_shard_size,
                  "Largest output file for directory outputs, e.g. 5GiB (default: "
                  "convert.max_shard_size)");
  cmd->add_flag("--overwrite", flags->overwrite, "Replace an existing output");
  cmd->add_flag("--partial", flags->partial,
                "The input is part of a model (a shard, some layers): do not require every "
                "tensor the model has; fused tensors still need all their sources");
  cmd->add_flag("--json", flags->json, "Print the summary as one JSON object");
  cmd->callback([flags, &exit_code] { exit_code = RunConvert(*flags); });
}

}  // namespace weightsync::cli
