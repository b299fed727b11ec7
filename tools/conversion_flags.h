// The flags `convert` and `verify` share, so that a verify command line is the convert command
// line with one word changed.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/model_spec.h"

namespace weightsync::cli {

struct ConversionFlags {
  std::string model;
  std::string source_format = "hf";
  std::string target_format = "vllm";
  std::string input;
  std::string output;
  std::vector<std::string> ignore;
  std::vector<std::string> spec_dirs;
  std::string threads;
  bool json = false;
  bool partial = false;
};

// --model, --source-format, --target-format, --input, --output (described by `output_help`),
// --ignore, --spec-dir, --threads, --partial, --json.
void AddConversionFlags(CLI::App& cmd, ConversionFlags& flags, const std::string& output_help);

// The model spec the flags name (built-in, WEIGHTSYNC_MODEL_PATH or --spec-dir).
Result<ModelSpec> LoadModelSpec(const ConversionFlags& flags);

// The configuration table from the environment, with --threads applied.
Result<Config> ConversionConfig(const ConversionFlags& flags);

}  // namespace weightsync::cli
