#include "agent/job_plan.h"

namespace weightsync::agent {

Shape SourceShard::local_shape() const {
  Shape shape = global_shape;
  if (!shape.empty()) shape[0] = first_dim.size();
  return shape;
}

int64_t DestinationTensor::bytes() const {
  return NumElements(shape) * static_cast<int64_t>(DTypeSize(dtype));
}

SourceShard JobPlan::ShardOf(const SourceTensor& source, int shard) const {
  const TrainerParallelism& t = plan.options.trainer;
  SourceShard out{source.name, source.shape, source.dtype, source.shape.size() == 3, {}};
  const int64_t n = source.shape.empty() ? 1 : source.shape[0];
  if (out.stacked) {
    out.first_dim = t.ExpertsOf(n, shard);
  } else {
    out.first_dim = ChunkRange(n, t.fsdp, shard);
  }
  return out;
}

std::vector<SourceShard> JobPlan::ShardsOf(int rank) const {
  std::vector<SourceShard> out;
  for (const SourceTensor& source : sources) {
    out.push_back(ShardOf(source, rank % plan.options.trainer.fsdp));
  }
  return out;
}

std::vector<DestinationTensor> JobPlan::DestinationsOf(int rank) const {
  const int local = rank % plan.options.inference.ranks();
  std::vector<DestinationTensor> out;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor& tensor = plan.tensors[i];
    const LocalLayout& layout = tensor.layouts[local];
    if (layout.empty()) continue;
    const auto shape_of = [&](const LocalLayout& l) {
      const int64_t parts = static_cast<int64_t>(l.parts.size());
      if (tensor.shape.stacked) return Shape{parts, l.local_rows(), l.cols.size()};
      // 1D tensors (norms, biases) are planned as [n, 1].
      if (tensor.shape.cols == 1) return Shape{l.local_rows()};
      return Shape{l.local_rows(), l.cols.size()};
    };
    out.push_back({tensor.shape.name, tensor.dtype, shape_of(layout), static_cast<int32_t>(i),
                   false});
    if (tensor.shape.fp8) {
      const LocalLayout scale = ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols);
      const int64_t parts = static_cast<int64_t>(scale.parts.size());
      Shape shape = tensor.shape.stacked ? Shape{parts, scale.local_rows(), scale.cols.size()}
                                         : Shape{scale.local_rows(), scale.cols.size()};
      out.push_back({tensor.scale_name, DType::kF32, shape, static_cast<int32_t>(i), true});
    }
  }
  return out;
}

const SourceTensor* JobPlan::FindSource(const std::string& name) const {
  auto it = source_index.find(name);
  return it == source_index.end() ? nullptr : &sources[it->second];
}

Result<ConversionPlan> JobPlan::Conversions() const {
  std::vector<SourceTensorInfo> infos;
  for (const SourceTensor& s : sources) infos.push_back({s.name, s.shape});
  ConversionPlanOptions options;
  options.source_format = plan.options.source_format;
  options.target_format = plan.options.target_format;
  return PlanConversion(spec, infos, options);
}

Result<JobPlan> BuildJobPlan(const AgentOptions& options) {
  JobPlan job;
  WS_ASSIGN_OR_RETURN(ModelSpecLibrary library, ModelSpecLibrary::FromEnvironment());
  for (const std::string& dir : options.spec_dirs) WS_RETURN_IF_ERROR(library.AddDirectory(dir));
  std::string model = options.model;
  if (model.empty()) {
    WS_ASSIGN_OR_RETURN(model, ModelSpecForType(options.dims.model_type));
  }
  WS_ASSIGN_OR_RETURN(job.spec, library.Load(model));
  WS_ASSIGN_OR_RETURN(const SourceFormat* format,
                      job.spec.FindSourceFormat(options.plan.source_format));
  WS_ASSIGN_OR_RETURN(std::vector<SourceTensor> canonical, CanonicalTensors(options.dims));
  WS_ASSIGN_OR_RETURN(job.sources, TensorsInFormat(canonical, *format));
  for (size_t i = 0; i < job.sources.size(); ++i) job.source_index[job.sources[i].name] = i;
  WS_ASSIGN_OR_RETURN(job.plan, BuildTransferPlan(job.spec, options.dims, options.plan));
  WS_RETURN_IF_ERROR(ValidatePlan(job.plan));
  return job;
}

namespace {

// Shared by both checks: names, dtypes, shapes, contiguity.
template <typename Expected, typename ShapeOf>
Status CheckTensors(const std::vector<Expected>& expected, ShapeOf shape_of,
                    const std::map<std::string, TensorView>& given, std::string_view what,
                    std::string_view kind) {
  std::map<std::string, bool> known;
  for (const Expected& e : expected) {
    known[e.name] = true;
    auto it = given.find(e.name);
    if (it == given.end()) {
      return InvalidArgument(what, ": ", kind, " tensor ", e.name, " (", DTypeTorchName(e.dtype),
                             ShapeToString(shape_of(e)), ") was not given");
    }
    const TensorView& view = it->second;
    if (view.dtype != e.dtype || view.shape != shape_of(e)) {
      return InvalidArgument(what, ": ", kind, " tensor ", e.name, " is ", view.ToString(),
                             ", the plan needs ", DTypeTorchName(e.dtype),
                             ShapeToString(shape_of(e)));
    }
    if (!view.is_contiguous() || (view.data == nullptr && view.nbytes() > 0)) {
      return InvalidArgument(what, ": ", kind, " tensor ", e.name, " (", view.ToString(),
                             ") must be contiguous memory");
    }
  }
  for (const auto& [name, view] : given) {
    if (!known.count(name)) {
      return InvalidArgument(what, ": ", kind, " tensor ", name, " (", view.ToString(),
                             ") is not one this rank holds in the plan");
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckSources(const std::vector<SourceShard>& expected,
                    const std::map<std::string, TensorView>& given, std::string_view what) {
  return CheckTensors(
      expected, [](const SourceShard& s) { return s.local_shape(); }, given, what, "source");
}

Status CheckDestinations(const std::vector<DestinationTensor>& expected,
                         const std::map<std::string, TensorView>& given, std::string_view what) {
  return CheckTensors(
      expected, [](const DestinationTensor& d) { return d.shape; }, given, what, "destination");
}

}  // namespace weightsync::agent
