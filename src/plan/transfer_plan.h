// The transfer plan: for every destination byte of every inference replica, which trainer rank
// converts it, from which source rows, into which staging slot, and which write delivers it.
//
// Computed once at start-up, identically on every rank from the same inputs (the hash is compared
// in the rendezvous), then replayed every push. Pure: no I/O, no devices.
//
// Work is cut into convert units: rows (whole 128-row blocks for FP8) of one part range of one
// destination tensor, converted by one trainer rank into one staging slot.
// - "sharded": the unit's source rows all live on one rank (its FSDP shard, or whole experts), so
//   it is converted where it lives.
// - "gathered": a block straddles shards (FP8 blocks need all 128 rows), or the tensor is so small
//   that per-shard pieces would cost more in write overhead than they save: the rows are gathered
//   to one owner chosen to balance NIC bytes over every sending trainer rank. Sharded units of an
//   overloaded rank (uneven torch.chunk expert splits) are also handed whole to a less loaded rank
//   of the same node, over NVLink, and become gathered.
// A staging slot stores the unit as column segments (one per distinct column split of the
// destination), each cut into row groups (the rows the lowest inference rank holding them holds,
// e.g. [gate_r; up_r] of a merged column), each group a contiguous [parts, group rows, segment
// columns] matrix: so a rank's share of a unit is usually one contiguous byte range on both sides,
// one write, even across experts. FP8 scales get a slot of the same shape in 128-blocks.
//
// Threading: BuildTransferPlan and ValidatePlan are pure; a TransferPlan is an immutable value
// after it is built and may be shared between threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/model_spec.h"
#include "plan/layout.h"
#include "plan/model_dims.h"

namespace weightsync {

struct PlanOptions {
  std::string source_format = "torchtitan";
  std::string target_format = "vllm";
  TrainerParallelism trainer;
  InferenceParallelism inference;
  // Bytes of staging per trainer rank (plan.staging_budget).
  int64_t staging_budget = static_cast<int64_t>(DefaultBytes("plan.staging_budget"));
  // The largest convert unit (plan.unit_bytes).
  int64_t unit_bytes = static_cast<int64_t>(DefaultBytes("plan.unit_bytes"));
  // Smaller shards are gathered (plan.min_shard_bytes).
  int64_t min_shard_bytes = static_cast<int64_t>(DefaultBytes("plan.min_shard_bytes"));
  // What one write costs in balancing, as bytes (plan.write_cost_bytes): ~ posting overhead x NIC
  // rate, so a rank given many tiny units is not taken for an idle one.
  int64_t write_cost_bytes = static_cast<int64_t>(DefaultBytes("plan.write_cost_bytes"));
  // A rank more loaded than this fraction above its node's least loaded sender hands whole
  // sharded units to it over NVLink (plan.rebalance_tolerance, in percent).
  int64_t rebalance_tolerance_percent = DefaultCount("plan.rebalance_tolerance");
};

// Source rows of one destination part: the rows `rows` of the destination come from source rows
// starting at `source_row` of `tensor` (of expert `index` of a [E, ...] stack when index >= 0).
struct SourcePiece {
  std::string tensor;
  int64_t index = -1;
  int64_t stack_experts = 0;  // E, when index >= 0
  int64_t tensor_rows = 0;    // dim 0 of the tensor (what FSDP splits), when index < 0
  int64_t source_row = 0;
  Range rows;
  int64_t cols = 0;
  int64_t element_bytes = 2;
};

struct PlannedTensor {
  TensorShape2D shape;
  std::string scale_name;  // empty unless FP8
  DType dtype = DType::kBF16;
  int cat_dim = 0;
  std::vector<std::vector<SourcePiece>> pieces;      // per part
  std::vector<Range> segments;                       // column segments of a staging slot
  std::vector<std::vector<Range>> row_groups;        // slot row groups, ascending rows in each
  std::vector<std::vector<Range>> scale_row_groups;  // the same in 128-row blocks (FP8 only)
  std::vector<LocalLayout> layouts;                  // per inference rank (same for every replica)

  int64_t element_bytes() const;
  int64_t scale_cols() const;  // 128-blocks per row
};

struct ConvertUnit {
  int32_t tensor = 0;
  Range parts;
  Range rows;
  bool gathered = false;
  bool moved = false;  // a sharded unit handed to another rank of its node for balance
  int32_t owner = -1;  // global trainer rank
  int64_t weight_bytes = 0;
  int64_t scale_bytes = 0;
  int64_t source_bytes = 0;      // read by the conversion (and moved first, for gathered units)
  int64_t gather_bytes = 0;      // source bytes fetched from other ranks (gathered units)
  int64_t gather_nic_bytes = 0;  // of which across nodes
  int64_t staging_offset = 0;    // in the owner's staging ring
  int64_t staging_bytes = 0;     // weight + scale (+ gathered source) bytes
  int64_t egress_bytes = 0;      // sum of its writes
  int64_t first_write = 0;       // writes of this unit: [first_write, first_write + write_count)
  int64_t write_count = 0;
};

// One contiguous RDMA/IPC write: slot bytes -> a destination tensor on an inference rank.
struct PlannedWrite {
  int32_t unit = 0;
  int32_t replica = 0;
  int32_t rank = 0;
  bool scale = false;
  int64_t slot_offset = 0;  // in the unit's weight (or scale) slot
  int64_t dest_offset = 0;  // in the rank's tensor
  int64_t bytes = 0;
};

struct TrainerRankLoad {
  int64_t write_bytes = 0;
  int64_t writes = 0;
  int64_t units = 0;
  int64_t gather_in_bytes = 0;       // fetched for its gathered units
  int64_t gather_nic_in_bytes = 0;   // of which across nodes
  int64_t gather_nic_out_bytes = 0;  // sent to other nodes' gathered units
  int64_t staging_bytes = 0;         // high-water mark of its staging ring
  int64_t nic_egress_bytes() const { return write_bytes + gather_nic_out_bytes; }
};

struct TransferPlan {
  PlanOptions options;
  ModelDims dims;
  std::string model;
  std::string model_spec_hash;
  std::vector<PlannedTensor> tensors;
  std::vector<ConvertUnit> units;
  std::vector<PlannedWrite> writes;            // grouped by unit
  std::vector<std::vector<int32_t>> schedule;  // per trainer rank: its units, in order
  std::vector<TrainerRankLoad> trainer;        // per trainer rank (world, senders first)
  std::vector<int64_t> inference_bytes;        // per replica * ranks + rank: bytes written
  std::string hash;                            // xxh64 of everything above, hex

  int64_t inference_ranks() const { return options.inference.ranks(); }
};

Result<TransferPlan> BuildTransferPlan(const ModelSpec& model, const ModelDims& dims,
                                       const PlanOptions& options);

// Proves every destination byte (padding excepted) of every replica is written exactly once, no
// write leaves its region or its slot, staging stays in budget. Errors name tensor and ranks.
Status ValidatePlan(const TransferPlan& plan);

// Byte size of `tensor` (or its FP8 scale) on an inference rank holding `layout`.
int64_t RegionBytes(const PlannedTensor& tensor, const LocalLayout& layout, bool scale);

// xxh64 over the plan's content, hex; what BuildTransferPlan stores in plan.hash.
std::string HashPlan(const TransferPlan& plan);

}  // namespace weightsync
