#include "model/checkpoint_conversion.h"

#include <chrono>
#include <set>

#include "io/checkpoint_writer.h"
#include "io/output_location.h"
#include "model/checkpoint_side_files.h"

namespace weightsync {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The side files go only into directory outputs, from a directory input or an explicit config.
Status AddSideFiles(const PreparedConversion& prepared, const std::filesystem::path& output,
                    const std::filesystem::path& config, CheckpointWriter& writer) {
  if (output.extension() == ".safetensors") return Status::Ok();
  const std::filesystem::path& input = prepared.checkpoint.path();
  std::error_code error;
  const std::filesystem::path directory =
      std::filesystem::is_directory(input, error) ? input : std::filesystem::path();
  if (directory.empty() && config.empty()) return Status::Ok();
  WS_ASSIGN_OR_RETURN(std::vector<SideFile> files,
                      CollectSideFiles(directory, config, prepared.resolved));
  for (const SideFile& file : files) WS_RETURN_IF_ERROR(writer.AddFile(file.name, file.contents));
  return Status::Ok();
}

Status ConvertAll(const PreparedConversion& prepared, const CheckpointWriter& writer,
                  const CheckpointConversionOptions& options) {
  ConversionProgress progress;
  progress.tensors_total = static_cast<int64_t>(prepared.resolved.size());
  progress.bytes_total = prepared.summary.bytes_read;
  for (const ResolvedConversion& r : prepared.resolved) {
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
  return Status::Ok();
}

}  // namespace

Result<PreparedConversion> PrepareConversion(const ModelSpec& model,
                                             const std::filesystem::path& input,
                                             const ConversionPlanOptions& plan_options,
                                             const SourceCheck& check_sources) {
  WS_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(input));
  PreparedConversion prepared{std::move(checkpoint), {}, {}, {}};
  const Checkpoint& source = prepared.checkpoint;
  std::vector<SourceTensorInfo> sources;
  for (const std::string& name : source.names()) {
    WS_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, source.Info(name));
    sources.push_back({name, info->shape});
  }
  WS_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(model, sources, plan_options));
  if (check_sources) {
    const std::set<std::string> ignored(plan.ignored.begin(), plan.ignored.end());
    std::erase_if(sources, [&](const SourceTensorInfo& s) { return ignored.contains(s.name); });
    WS_RETURN_IF_ERROR(check_sources(sources));
  }

  // Check every destination against the real tensors before creating any output file.
  SourceLookup lookup = [&](const std::string& name) { return source.Find(name); };
  ConversionSummary& summary = prepared.summary;
  for (const ConversionSpec& spec : plan.specs) {
    WS_ASSIGN_OR_RETURN(ResolvedConversion r, ResolveConversion(spec, lookup));
    prepared.declared.push_back({spec.destination, spec.quantization.destination_dtype, r.shape});
    if (spec.quantization.quantized()) {
      prepared.declared.push_back({spec.scale_name(), DType::kF32, r.scale_shape});
    }
    summary.bytes_read += r.source_bytes;
    summary.bytes_written += r.destination_bytes() + r.scale_bytes();
    prepared.resolved.push_back(std::move(r));
  }
  summary.source_tensors = static_cast<int64_t>(source.names().size() - plan.ignored.size());
  summary.destination_tensors = static_cast<int64_t>(prepared.declared.size());
  summary.ignored = plan.ignored;
  return prepared;
}

Result<ConversionSummary> ConvertCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& output,
                                            const CheckpointConversionOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  WS_ASSIGN_OR_RETURN(PreparedConversion prepared,
                      PrepareConversion(model, input, options.plan, options.check_sources));
  WS_RETURN_IF_ERROR(CheckOutputApartFromInput(output, prepared.checkpoint));

  CheckpointWriterOptions writer_options;
  writer_options.max_shard_bytes = options.max_shard_bytes;
  writer_options.overwrite = options.overwrite;
  writer_options.metadata = {{"format", "pt"},
                             {"weightsync_model", model.name},
                             {"weightsync_target_format", options.plan.target_format},
                             {"weightsync_model_spec_hash", model.hash}};
  WS_ASSIGN_OR_RETURN(CheckpointWriter writer,
                      CheckpointWriter::Create(output, prepared.declared, writer_options));
  WS_RETURN_IF_ERROR(AddSideFiles(prepared, output, options.config, writer));

  const auto convert_start = std::chrono::steady_clock::now();
  WS_RETURN_IF_ERROR(ConvertAll(prepared, writer, options));
  ConversionSummary summary = std::move(prepared.summary);
  summary.convert_seconds = SecondsSince(convert_start);
  const auto commit_start = std::chrono::steady_clock::now();
  WS_RETURN_IF_ERROR(writer.Commit());
  summary.commit_seconds = SecondsSince(commit_start);
  summary.output_files = writer.file_names();
  summary.side_files = writer.side_files();
  summary.kernels = std::string(FastPathName());
  summary.seconds = SecondsSince(start);
  return summary;
}

}  // namespace weightsync
