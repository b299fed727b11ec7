// Offline conversion of a whole checkpoint: the engine behind `weightsync convert`.
//
// Reads a Hugging Face-style checkpoint (mmap, nothing copied), plans every destination tensor from
// the model spec, converts straight into the memory-mapped output files and renames them into place
// only when every tensor succeeded: a failed run (bad value, full disk) leaves no output behind.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "model/conversion_plan.h"

namespace weightsync {

struct ConversionProgress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  int64_t bytes_done = 0;  // source bytes read so far
  int64_t bytes_total = 0;
  std::string current;     // destination just finished
};

struct CheckpointConversionOptions {
  ConversionPlanOptions plan;
  uint64_t max_shard_bytes = 5ull << 30;  // for directory outputs
  int threads = 0;                        // 0: every core
  bool overwrite = false;
  std::function<void(const ConversionProgress&)> on_progress;  // called after each destination
};

struct ConversionSummary {
  int64_t source_tensors = 0;  // tensors read (ignored ones excluded)
  int64_t destination_tensors = 0;  // tensors written, scales included
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
  double seconds = 0;          // all of it
  double convert_seconds = 0;  // reading sources and converting into the mapped output
  double commit_seconds = 0;   // flushing the output to disk and renaming it into place
  std::vector<std::string> ignored;
  std::vector<std::string> output_files;
  std::string kernels;  // "avx512", "avx2" or "scalar"
};

Result<ConversionSummary> ConvertCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& output,
                                            const CheckpointConversionOptions& options);

}  // namespace weightsync
