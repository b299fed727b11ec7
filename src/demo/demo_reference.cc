#include "demo/demo_reference.h"

#include <cstring>

#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"
#include "plan/layout.h"

namespace weightsync::demo {

Result<std::vector<ResolvedConversion>> ReferenceDestinations::Resolve(
    const agent::JobPlan& job, const std::map<std::string, TensorView>& sources) {
  WS_ASSIGN_OR_RETURN(ConversionPlan conversion, job.Conversions());
  const SourceLookup lookup = [&](const std::string& name) -> Result<TensorView> {
    auto it = sources.find(name);
    if (it == sources.end()) return NotFound("source ", name, " was not generated");
    return it->second;
  };
  std::vector<ResolvedConversion> out;
  for (const ConversionSpec& spec : conversion.specs) {
    WS_ASSIGN_OR_RETURN(ResolvedConversion resolved, ResolveConversion(spec, lookup));
    out.push_back(std::move(resolved));
  }
  return out;
}

std::pair<ReferenceDestinations::Full*, ReferenceDestinations::Full*>
ReferenceDestinations::Prepare(const ResolvedConversion& resolved) {
  const ConversionSpec& spec = resolved.spec;
  Full& weight = full_[spec.destination];
  weight.parts = spec.stacked ? resolved.shape[0] : 1;
  weight.rows = resolved.rows;
  weight.cols = resolved.cols;
  weight.element = static_cast<int64_t>(DTypeSize(spec.quantization.destination_dtype));
  weight.bytes.resize(resolved.destination_bytes());
  if (!spec.quantization.quantized()) return {&weight, nullptr};
  Full& scale = full_[spec.scale_name()];
  scale.parts = weight.parts;
  scale.rows = resolved.scale_shape[resolved.scale_shape.size() - 2];
  scale.cols = resolved.scale_shape.back();
  scale.element = 4;
  scale.bytes.resize(resolved.scale_bytes());
  return {&weight, &scale};
}

Result<ReferenceDestinations> ReferenceDestinations::Compute(
    const agent::JobPlan& job, const std::map<std::string, TensorView>& sources, int threads) {
  ReferenceDestinations out;
  WS_ASSIGN_OR_RETURN(auto resolved_all, Resolve(job, sources));
  for (const ResolvedConversion& resolved : resolved_all) {
    auto [weight, scale] = out.Prepare(resolved);
    const DType dtype = resolved.spec.quantization.destination_dtype;
    TensorView scale_view;
    if (scale) {
      scale_view = TensorView::Contiguous(scale->bytes.data(), resolved.scale_shape, DType::kF32);
    }
    WS_RETURN_IF_ERROR(ExecuteConversion(
        resolved, TensorView::Contiguous(weight->bytes.data(), resolved.shape, dtype), scale_view,
        threads));
  }
  return out;
}

Result<ReferenceDestinations> ReferenceDestinations::ComputeOnDevice(
    const agent::JobPlan& job, const std::map<std::string, TensorView>& device_sources) {
  ReferenceDestinations out;
  WS_ASSIGN_OR_RETURN(auto resolved_all, Resolve(job, device_sources));
  for (const ResolvedConversion& resolved : resolved_all) {
    auto [weight, scale] = out.Prepare(resolved);
    // One destination at a time on the device: a GLM-5 expert stack is gigabytes.
    WS_ASSIGN_OR_RETURN(void* device_weight, DeviceAlloc(weight->bytes.size()));
    void* device_scale = nullptr;
    Status status;
    if (scale) {
      Result<void*> allocated = DeviceAlloc(scale->bytes.size());
      status = allocated.status();
      if (status.ok()) device_scale = *allocated;
    }
    if (status.ok()) {
      status = ConvertOnDevice(
          ConversionJobs(resolved, device_weight, static_cast<float*>(device_scale)), nullptr);
    }
    if (status.ok()) {
      status = CopyDeviceToHost(weight->bytes.data(), device_weight, weight->bytes.size());
    }
    if (status.ok() && scale) {
      status = CopyDeviceToHost(scale->bytes.data(), device_scale, scale->bytes.size());
    }
    DeviceFree(device_weight);
    DeviceFree(device_scale);
    WS_RETURN_IF_ERROR(status.WithContext(StrCat("reference of ", resolved.spec.destination)));
  }
  return out;
}

Status ReferenceDestinations::Verify(const agent::JobPlan& job, int rank,
                                     const std::map<std::string, TensorView>& actual) const {
  const int local = rank % job.plan.options.inference.ranks();
  for (const agent::DestinationTensor& d : job.DestinationsOf(rank)) {
    const PlannedTensor& tensor = job.plan.tensors[d.tensor];
    const LocalLayout& weight_layout = tensor.layouts[local];
    const LocalLayout layout =
        d.scale ? ScaleLayout(weight_layout, tensor.shape.rows, tensor.shape.cols) : weight_layout;
    auto full_it = full_.find(d.name);
    auto actual_it = actual.find(d.name);
    if (full_it == full_.end() || actual_it == actual.end()) {
      return NotFound("inference ", rank, ": no reference or no tensor for ", d.name);
    }
    const Full& full = full_it->second;
    const auto* got = static_cast<const uint8_t*>(actual_it->second.data);
    const int64_t local_cols = layout.cols.size();
    const int64_t row_bytes = local_cols * full.element;
    const int64_t local_rows = layout.local_rows();
    for (size_t p = 0; p < layout.parts.size(); ++p) {
      const int64_t part = layout.parts[p];
      int64_t local_row = 0;
      for (const Range& range : layout.rows) {
        for (int64_t row = range.begin; row < range.end; ++row, ++local_row) {
          if (row >= full.rows) continue;  // padding (vocab): never written
          const uint8_t* want =
              full.bytes.data() + ((part * full.rows + row) * full.cols + layout.cols.begin) *
                                      full.element;
          const uint8_t* have =
              got + ((static_cast<int64_t>(p) * local_rows + local_row) * local_cols) *
                        full.element;
          if (std::memcmp(want, have, row_bytes) == 0) continue;
          int64_t col = 0;
          while (std::memcmp(want + col * full.element, have + col * full.element,
                             full.element) == 0) {
            ++col;
          }
          return DataLoss("inference ", rank, ": ", d.name, " differs from the reference at ",
                          tensor.shape.stacked ? StrCat("expert ", part, " ") : std::string(),
                          "row ", row, " column ", layout.cols.begin + col);
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::demo
