// The steps of BuildTransferPlan, one file each, shared with their tests. Not a public API.
#pragma once

#include <vector>

#include "plan/transfer_plan.h"

namespace weightsync::plan_internal {

using weightsync::CeilDiv;

// Slots are laid out on this alignment inside a staging ring (RDMA and vector loads like it).
constexpr int64_t kSlotAlignment = 256;
inline int64_t AlignUp(int64_t n) { return CeilDiv(n, kSlotAlignment) * kSlotAlignment; }

// plan_tensors.cc: the destination tensors (PlanConversion over the model's source tensors), their
// source pieces, per-rank layouts and slot column segments.
Result<std::vector<PlannedTensor>> PlanTensors(const ModelSpec& model, const ModelDims& dims,
                                               const PlanOptions& options);

// plan_units.cc: rows of a part of a tensor, each with the shard (rank inside a trainer replica)
// that holds all their source rows, or -1 when the rows come from several shards.
struct OwnerRun {
  Range rows;
  int shard = -1;
};
std::vector<OwnerRun> OwnerRuns(const PlannedTensor& tensor, int64_t part,
                                const TrainerParallelism& trainer);
// Cuts every tensor into convert units (owners not yet chosen: sharded units carry their shard in
// `owner`, gathered ones -1).
std::vector<ConvertUnit> CutUnits(const std::vector<PlannedTensor>& tensors,
                                  const PlanOptions& options);
// Chooses owners (balancing NIC bytes), accounts gathers, orders each rank's units and places
// them in its staging ring. Needs units' egress_bytes.
Status AssignOwners(TransferPlan& plan);

// plan_writes.cc: the coalesced writes that deliver `unit` to every replica and rank.
Status AppendWrites(const PlannedTensor& tensor, int32_t unit_id, const ConvertUnit& unit,
                    const InferenceParallelism& inference, std::vector<PlannedWrite>& out);

}  // namespace weightsync::plan_internal
