#include "model/checkpoint_conversion.h"

#include <chrono>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"

namespace weightsync {

Result<ConversionSummary> ConvertCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& output,
                                            const CheckpointConversionOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  WS_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(input));

  std::vector<SourceTensorInfo> sources;
  for (const std::string& name : checkpoint.names()) {
    WS_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, checkpoint.Info(name));
    sources.push_back({name, info->shape});
  }
  WS_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(model, sources, options.plan));

  // Check every destination against the real tensors before creating any output file.
  SourceLookup lookup = [&](const std::string& name) { return checkpoint.Find(name); };
  std::vector<ResolvedConversion> resolved;
  std::vector<TensorDecl> declared;
  ConversionSummary summary;
  for (const ConversionSpec& spec : plan.specs) {
    WS_ASSIGN_OR_RETURN(ResolvedConversion r, ResolveConversion(spec, lookup));
    declared.push_back({spec.destination, spec.quantization.destination_dtype, r.shape});
    if (spec.quantization.quantized()) {
      declared.push_back({spec.scale_name(), DType::kF32, r.scale_shape});
    }
    summary.bytes_read += r.source_bytes;
    summary.bytes_written += r.destination_bytes() + r.scale_bytes();
    resolved.push_back(std::move(r));
  }
  summary.source_tensors = static_cast<int64_t>(sources.size() - plan.ignored.size());
  summary.destination_tensors = static_cast<int64_t>(declared.size());
  summary.ignored = plan.ignored;

  CheckpointWriterOptions writer_options;
  writer_options.max_shard_bytes = options.max_shard_bytes;
  writer_options.overwrite = options.overwrite;
  writer_options.metadata = {{"format", "pt"},
                             {"weightsync_model", model.name},
                             {"weightsync_target_format", options.plan.target_format},
                             {"weightsync_model_spec_hash", model.hash}};
  WS_ASSIGN_OR_RETURN(CheckpointWriter writer,
                      CheckpointWriter::Create(output, declared, writer_options));

  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  const auto convert_start = std::chrono::steady_clock::now();
  ConversionProgress progress;
  progress.tensors_total = static_cast<int64_t>(resolved.size());
  progress.bytes_total = summary.bytes_read;
  for (const ResolvedConversion& r : resolved) {
    WS_ASSIGN_OR_RETURN(TensorView destination, writer.Tensor(r.spec.destination));
    TensorView scale;
    if (r.spec.quantization.quantized()) {
      WS_ASSIGN_OR_RETURN(scale, writer.Tensor(r.spec.scale_name()));
    }
    // On error the writer's destructor removes every temporary file.
    WS_RETURN_IF_ERROR(ExecuteConversion(r, destination, scale, options.threads));
    ++progress.tensors_done;
    progress.bytes_done += r.source_bytes;
    progress.current = r.spec.destination;
    if (options.on_progress) options.on_progress(progress);
  }
  summary.convert_seconds = seconds_since(convert_start);
  const auto commit_start = std::chrono::steady_clock::now();
  WS_RETURN_IF_ERROR(writer.Commit());
  summary.commit_seconds = seconds_since(commit_start);
  summary.output_files = writer.file_names();
  summary.kernels = std::string(FastPathName());
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace weightsync
