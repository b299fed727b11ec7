// Job plans (what each rank holds) and in-memory conversion plans, as C handles.
#include "agent/job_plan.h"
#include "capi/capi_internal.h"
#include "convert/conversion_spec.h"
#include "model/conversion_plan.h"

struct ws_job_plan {
  weightsync::capi::ErrorSlot error;
  weightsync::agent::JobPlan job;
};

struct ws_convert_plan {
  weightsync::capi::ErrorSlot error;
  std::vector<weightsync::ConversionSpec> specs;
  // The sources as planned: ws_convert_tensors refuses anything else, naming the tensor.
  std::map<std::string, weightsync::TensorView> sources;
  std::unique_ptr<ws_tensor_list> destinations;
};

using namespace weightsync;  // NOLINT: the C entry points below only

namespace {

Status CheckRank(int32_t rank, int32_t world, const char* what) {
  if (rank < 0 || rank >= world) {
    return InvalidArgument(what, " rank ", rank, " is not in 0..", world - 1);
  }
  return Status::Ok();
}

// The destinations resolved against `sources` (descriptions only; no data is read).
Result<std::vector<ResolvedConversion>> Resolve(const std::vector<ConversionSpec>& specs,
                                                const std::map<std::string, TensorView>& sources) {
  SourceLookup lookup = [&](const std::string& name) -> Result<TensorView> {
    auto it = sources.find(name);
    if (it == sources.end()) return NotFound("source tensor ", name, " was not given");
    return it->second;
  };
  std::vector<ResolvedConversion> out;
  for (const ConversionSpec& spec : specs) {
    WS_ASSIGN_OR_RETURN(ResolvedConversion r, ResolveConversion(spec, lookup));
    out.push_back(std::move(r));
  }
  return out;
}

// Same name set, dtypes and shapes as planned; contiguous CPU memory.
Status CheckSameSources(const std::map<std::string, TensorView>& planned,
                        const std::map<std::string, TensorView>& given) {
  for (const auto& [name, view] : given) {
    auto it = planned.find(name);
    if (it == planned.end()) {
      return InvalidArgument("source tensor ", name, " was not in the conversion plan");
    }
    if (view.dtype != it->second.dtype || view.shape != it->second.shape) {
      return InvalidArgument("source tensor ", name, " is ", view.ToString(), "; it was planned as ",
                             it->second.ToString());
    }
    if (!view.is_contiguous() || view.device.kind != DeviceKind::kCpu) {
      return InvalidArgument("source tensor ", name, " (", view.ToString(),
                             ") must be contiguous CPU memory");
    }
  }
  for (const auto& [name, view] : planned) {
    if (!given.count(name)) return InvalidArgument("source tensor ", name, " was not given");
  }
  return Status::Ok();
}

}  // namespace

extern "C" {

WS_API ws_status ws_job_plan_create(const char* options_json, ws_job_plan** out) {
  return capi::Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_ASSIGN_OR_RETURN(capi::ParsedOptions options, capi::ParseOptions(options_json, false));
    auto plan = std::make_unique<ws_job_plan>();
    WS_ASSIGN_OR_RETURN(plan->job, agent::BuildJobPlan(options.agent));
    *out = plan.release();
    return Status::Ok();
  });
}

WS_API const char* ws_job_plan_hash(const ws_job_plan* plan) {
  return plan == nullptr ? "" : plan->job.plan.hash.c_str();
}
WS_API int32_t ws_job_plan_trainer_world(const ws_job_plan* plan) {
  return plan == nullptr ? 0 : plan->job.trainer_world();
}
WS_API int32_t ws_job_plan_inference_world(const ws_job_plan* plan) {
  return plan == nullptr ? 0 : plan->job.inference_world();
}

WS_API ws_status ws_job_plan_trainer_sources(const ws_job_plan* plan, int32_t rank,
                                             ws_tensor_list** out) {
  return capi::Guard(plan ? &const_cast<ws_job_plan*>(plan)->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(plan, "plan"));
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_RETURN_IF_ERROR(CheckRank(rank, plan->job.trainer_world(), "trainer"));
    auto list = std::make_unique<ws_tensor_list>();
    for (const agent::SourceShard& s : plan->job.ShardsOf(rank)) {
      list->items.push_back({s.name, s.dtype, s.local_shape()});
    }
    *out = list.release();
    return Status::Ok();
  });
}

WS_API ws_status ws_job_plan_trainer_source_rows(const ws_job_plan* plan, int32_t rank,
                                                 int64_t* first, int64_t* total, size_t count) {
  return capi::Guard(plan ? &const_cast<ws_job_plan*>(plan)->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(plan, "plan"));
    WS_RETURN_IF_ERROR(capi::NotNull(first, "first"));
    WS_RETURN_IF_ERROR(capi::NotNull(total, "total"));
    WS_RETURN_IF_ERROR(CheckRank(rank, plan->job.trainer_world(), "trainer"));
    const std::vector<agent::SourceShard> shards = plan->job.ShardsOf(rank);
    if (count != shards.size()) {
      return InvalidArgument("trainer rank ", rank, " has ", shards.size(),
                             " source shards, the arrays hold ", count);
    }
    for (size_t i = 0; i < shards.size(); ++i) {
      first[i] = shards[i].first_dim.begin;
      total[i] = shards[i].global_shape.empty() ? 1 : shards[i].global_shape[0];
    }
    return Status::Ok();
  });
}

WS_API ws_status ws_job_plan_inference_destinations(const ws_job_plan* plan, int32_t rank,
                                                    ws_tensor_list** out) {
  return capi::Guard(plan ? &const_cast<ws_job_plan*>(plan)->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(plan, "plan"));
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_RETURN_IF_ERROR(CheckRank(rank, plan->job.inference_world(), "inference"));
    auto list = std::make_unique<ws_tensor_list>();
    for (const agent::DestinationTensor& d : plan->job.DestinationsOf(rank)) {
      list->items.push_back({d.name, d.dtype, d.shape});
    }
    *out = list.release();
    return Status::Ok();
  });
}

WS_API const char* ws_job_plan_last_error(const ws_job_plan* plan) {
  return plan == nullptr ? "" : plan->error.Get();
}
WS_API void ws_job_plan_destroy(ws_job_plan* plan) { delete plan; }

WS_API ws_status ws_convert_plan_create(const char* model, const char* source_format,
                                        const char* target_format, const ws_tensor* sources,
                                        size_t source_count, uint32_t flags,
                                        ws_convert_plan** out) {
  return capi::Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    WS_RETURN_IF_ERROR(capi::NotNull(model, "model"));
    WS_RETURN_IF_ERROR(capi::NotNull(source_format, "source_format"));
    WS_RETURN_IF_ERROR(capi::NotNull(target_format, "target_format"));
    if ((flags & ~WS_CONVERT_PARTIAL) != 0) return InvalidArgument("unknown flags ", flags);
    auto plan = std::make_unique<ws_convert_plan>();
    WS_ASSIGN_OR_RETURN(plan->sources, capi::ViewsOf(sources, source_count, "source", false));
    WS_ASSIGN_OR_RETURN(ModelSpecLibrary library, ModelSpecLibrary::FromEnvironment());
    WS_ASSIGN_OR_RETURN(ModelSpec spec, library.Load(model));
    std::vector<SourceTensorInfo> infos;
    for (const auto& [name, view] : plan->sources) infos.push_back({name, view.shape});
    ConversionPlanOptions options{source_format, target_format, {},
                                  (flags & WS_CONVERT_PARTIAL) != 0};
    WS_ASSIGN_OR_RETURN(ConversionPlan conversion, PlanConversion(spec, infos, options));
    WS_ASSIGN_OR_RETURN(std::vector<ResolvedConversion> resolved,
                        Resolve(conversion.specs, plan->sources));
    plan->destinations = std::make_unique<ws_tensor_list>();
    for (const ResolvedConversion& r : resolved) {
      plan->destinations->items.push_back(
          {r.spec.destination, r.spec.quantization.destination_dtype, r.shape});
      if (r.spec.quantization.quantized()) {
        plan->destinations->items.push_back({r.spec.scale_name(), DType::kF32, r.scale_shape});
      }
    }
    plan->specs = std::move(conversion.specs);
    *out = plan.release();
    return Status::Ok();
  });
}

WS_API ws_status ws_convert_plan_destinations(const ws_convert_plan* plan, ws_tensor_list** out) {
  return capi::Guard(plan ? &const_cast<ws_convert_plan*>(plan)->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(plan, "plan"));
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    *out = new ws_tensor_list(*plan->destinations);
    return Status::Ok();
  });
}

WS_API ws_status ws_convert_tensors(const ws_convert_plan* plan, const ws_tensor* sources,
                                    size_t source_count, const ws_tensor* destinations,
                                    size_t destination_count, int32_t threads) {
  return capi::Guard(plan ? &const_cast<ws_convert_plan*>(plan)->error : nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(plan, "plan"));
    WS_ASSIGN_OR_RETURN(auto given, capi::ViewsOf(sources, source_count, "source", true));
    WS_ASSIGN_OR_RETURN(auto outputs,
                        capi::ViewsOf(destinations, destination_count, "destination", true));
    WS_RETURN_IF_ERROR(CheckSameSources(plan->sources, given));
    // Every destination must be given, as planned, before any byte is written.
    for (const ws_tensor_list::Item& item : plan->destinations->items) {
      auto it = outputs.find(item.name);
      if (it == outputs.end()) {
        return InvalidArgument("destination tensor ", item.name, " (", DTypeTorchName(item.dtype),
                               ShapeToString(item.shape), ") was not given");
      }
      const TensorView& view = it->second;
      if (view.dtype != item.dtype || view.shape != item.shape || !view.is_contiguous() ||
          view.device.kind != DeviceKind::kCpu) {
        return InvalidArgument("destination tensor ", item.name, " is ", view.ToString(),
                               "; the conversion writes contiguous cpu ",
                               DTypeTorchName(item.dtype), ShapeToString(item.shape));
      }
    }
    if (outputs.size() != plan->destinations->items.size()) {
      for (const auto& [name, view] : outputs) {
        bool planned = false;
        for (const auto& item : plan->destinations->items) planned |= item.name == name;
        if (!planned) return InvalidArgument("destination tensor ", name, " is not in the plan");
      }
    }
    if (threads <= 0) {
      WS_ASSIGN_OR_RETURN(Config config, capi::GlobalConfig());
      WS_ASSIGN_OR_RETURN(int64_t n, config.GetCount("convert.threads"));
      threads = static_cast<int32_t>(n);
    }
    WS_ASSIGN_OR_RETURN(std::vector<ResolvedConversion> resolved, Resolve(plan->specs, given));
    for (const ResolvedConversion& r : resolved) {
      TensorView scale;
      if (r.spec.quantization.quantized()) scale = outputs.at(r.spec.scale_name());
      WS_RETURN_IF_ERROR(
          ExecuteConversion(r, outputs.at(r.spec.destination), scale, threads));
    }
    return Status::Ok();
  });
}

WS_API const char* ws_convert_plan_last_error(const ws_convert_plan* plan) {
  return plan == nullptr ? "" : plan->error.Get();
}
WS_API void ws_convert_plan_destroy(ws_convert_plan* plan) { delete plan; }

}  // extern "C"
