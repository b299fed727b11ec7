#include "plan/transfer_plan.h"

#include <xxhash.h>

#include <cstdio>
#include <memory>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"

namespace weightsync {

int64_t PlannedTensor::element_bytes() const { return static_cast<int64_t>(DTypeSize(dtype)); }

int64_t PlannedTensor::scale_cols() const {
  return plan_internal::CeilDiv(shape.cols, kFp8BlockSize);
}

Result<TransferPlan> BuildTransferPlan(const ModelSpec& model, const ModelDims& dims,
                                       const PlanOptions& options) {
  WS_RETURN_IF_ERROR(options.trainer.Validate());
  WS_RETURN_IF_ERROR(options.inference.Validate());
  if (options.staging_budget <= 0 || options.unit_bytes <= 0) {
    return InvalidArgument("plan options: staging budget and unit bytes must be positive");
  }
  TransferPlan plan;
  plan.options = options;
  plan.dims = dims;
  plan.model = model.name;
  plan.model_spec_hash = model.hash;
  WS_ASSIGN_OR_RETURN(plan.tensors, plan_internal::PlanTensors(model, dims, options));
  plan.units = plan_internal::CutUnits(plan.tensors, options);
  plan.inference_bytes.assign(
      static_cast<size_t>(options.inference.replicas) * options.inference.ranks(), 0);
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    ConvertUnit& unit = plan.units[u];
    unit.first_write = static_cast<int64_t>(plan.writes.size());
    WS_RETURN_IF_ERROR(plan_internal::AppendWrites(plan.tensors[unit.tensor], u, unit,
                                                   options.inference, plan.writes));
    unit.write_count = static_cast<int64_t>(plan.writes.size()) - unit.first_write;
    for (int64_t w = unit.first_write; w < unit.first_write + unit.write_count; ++w) {
      const PlannedWrite& write = plan.writes[w];
      unit.egress_bytes += write.bytes;
      plan.inference_bytes[static_cast<size_t>(write.replica) * options.inference.ranks() +
                           write.rank] += write.bytes;
    }
  }
  WS_RETURN_IF_ERROR(plan_internal::AssignOwners(plan));
  plan.hash = HashPlan(plan);
  return plan;
}

std::string HashPlan(const TransferPlan& plan) {
  std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> state(XXH64_createState(),
                                                                   &XXH64_freeState);
  XXH64_reset(state.get(), 0);
  // Fixed-width little-endian integers and length-prefixed strings: the same bytes on every rank.
  auto put = [&](int64_t v) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i));
    XXH64_update(state.get(), bytes, sizeof(bytes));
  };
  auto put_string = [&](const std::string& s) {
    put(static_cast<int64_t>(s.size()));
    XXH64_update(state.get(), s.data(), s.size());
  };
  const PlanOptions& o = plan.options;
  put_string(plan.model);
  put_string(plan.model_spec_hash);
  put_string(o.source_format);
  put_string(o.target_format);
  put_string(o.trainer.ToString());
  put(o.trainer.gpus_per_node);  // nodes bound the rebalancing and decide NVLink vs NIC gathers
  put_string(o.inference.ToString());
  put(o.staging_budget);
  put(o.unit_bytes);
  put(o.min_shard_bytes);
  put(o.write_cost_bytes);
  put(o.rebalance_tolerance_percent);
  for (const PlannedTensor& t : plan.tensors) {
    put_string(t.shape.name);
    put(static_cast<int64_t>(t.shape.parallel));
    put(t.shape.parts);
    put(t.shape.rows);
    put(t.shape.cols);
    put(static_cast<int64_t>(t.dtype));
  }
  for (const ConvertUnit& u : plan.units) {
    for (int64_t v : {int64_t{u.tensor}, u.parts.begin, u.parts.end, u.rows.begin, u.rows.end,
                      int64_t{u.gathered}, int64_t{u.moved}, int64_t{u.owner}, u.staging_offset,
                      u.staging_bytes}) {
      put(v);
    }
  }
  for (const PlannedWrite& w : plan.writes) {
    for (int64_t v : {int64_t{w.unit}, int64_t{w.replica}, int64_t{w.rank}, int64_t{w.scale},
                      w.slot_offset, w.dest_offset, w.bytes}) {
      put(v);
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(XXH64_digest(state.get())));
  return hex;
}

}  // namespace weightsync
