// Offline conversion of a whole checkpoint: the engine behind `weightsync convert`.
//
// Reads a Hugging Face-style checkpoint (mmap, nothing copied), plans every destination tensor from
// the model spec, converts straight into the memory-mapped output files and renames them into place
// only when every tensor succeeded: a failed run (bad value, full disk) leaves no output behind.
// A directory output also gets the input's config.json (with the quantization_config of the
// converted weights), generation config and tokenizer files (checkpoint_side_files.h), and the
// output may never be the input, lie inside it or contain it (io/output_location.h).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "model/conversion_plan.h"

namespace weightsync {

struct ConversionProgress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  int64_t bytes_done = 0;  // source bytes read so far
  int64_t bytes_total = 0;
  std::string current;  // destination just finished
};

// Checks the source tensors about to be converted (ignored ones excluded), before any output
// exists; the command line checks their shapes against the model's dimensions this way.
using SourceCheck = std::function<Status(const std::vector<SourceTensorInfo>&)>;

struct CheckpointConversionOptions {
  ConversionPlanOptions plan;
  uint64_t max_shard_bytes = 5ull << 30;  // for directory outputs
  int threads = 0;                        // 0: every core
  bool overwrite = false;
  SourceCheck check_sources;  // optional
  // The config.json rewritten into a directory output; empty: the input directory's, if any.
  std::filesystem::path config;
  std::function<void(const ConversionProgress&)> on_progress;  // called after each destination
};

struct ConversionSummary {
  int64_t source_tensors = 0;       // tensors read (ignored ones excluded)
  int64_t destination_tensors = 0;  // tensors written, scales included
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
  double seconds = 0;          // all of it
  double convert_seconds = 0;  // reading sources and converting into the mapped output
  double commit_seconds = 0;   // flushing the output to disk and renaming it into place
  std::vector<std::string> ignored;
  std::vector<std::string> output_files;
  std::vector<std::string> side_files;  // config.json, tokenizer files, ... (directory outputs)
  std::string kernels;                  // "avx512", "avx2" or "scalar"
};

// A checkpoint with every destination planned and resolved against its tensors (which the
// resolved pieces point into): what conversion and verification both start from.
struct PreparedConversion {
  Checkpoint checkpoint;
  std::vector<ResolvedConversion> resolved;
  std::vector<TensorDecl> declared;  // destinations and scales, in plan order
  ConversionSummary summary;         // counts and bytes filled in
};

Result<PreparedConversion> PrepareConversion(const ModelSpec& model,
                                             const std::filesystem::path& input,
                                             const ConversionPlanOptions& plan,
                                             const SourceCheck& check_sources = {});

Result<ConversionSummary> ConvertCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& output,
                                            const CheckpointConversionOptions& options);

}  // namespace weightsync
