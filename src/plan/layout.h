// Where tensors live: the trainer's shards (source) and the inference engine's ranks (destination).
//
// Source: one HSDP replica is an FSDP2 group of `fsdp` ranks, numbered as torchtitan's
// ParallelDims numbers them (its expert mesh is [dp_replicate, efsdp, ep], the dense mesh
// [dp_replicate, fsdp]; Megatron-Core's default order "tp-cp-ep-dp-pp" agrees for tp = cp = 1):
//   global rank = replica * fsdp + efsdp_rank * ep + ep_rank,   efsdp = fsdp / ep,
// so ranks 0..ep-1 of a replica form one EP group and the EP rank varies fastest.
// Non-expert tensors are Shard(0) over the whole replica (the flattened efsdp x ep): dim 0 split
// over the fsdp ranks in rank order with torch.chunk semantics (ceil(n / fsdp) rows per rank;
// trailing ranks may hold fewer rows or none). Expert stacks [E, ...] are split by experts over
// the ep ranks, then each ep rank's experts over its efsdp ranks, torch.chunk both times (DTensor:
// _StridedShard(0, split_factor=ep) on efsdp, Shard(0) on ep). torchtitan shards the experts on
// dim 1 instead when fsdp > E; the plan refuses that (CheckExpertStack).
//
// Destination: a vLLM engine of tp * dp ranks, `replicas` engines. Non-expert tensors follow their
// TensorParallelism over the tp ranks of each dp group; experts are spread over all tp * dp ranks
// with expert parallelism ("linear" or "round_robin"), or TP-sliced over them without it (vLLM
// flattens DP x TP into the MoE's TP group).
//
// Threading: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_spec.h"
#include "plan/model_dims.h"

namespace weightsync {

// [begin, end) of n items split into `parts` torch.chunk pieces; piece i may be empty.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const Range&) const = default;
};
Range ChunkRange(int64_t n, int64_t parts, int64_t i);
// The piece of ChunkRange(n, parts, .) that holds item x.
int64_t ChunkOf(int64_t n, int64_t parts, int64_t x);

struct TrainerParallelism {
  int fsdp = 1;  // ranks of one HSDP replica (FSDP2 dp_shard)
  int ep = 1;    // expert parallel degree inside the replica; divides fsdp
  int hsdp = 1;  // HSDP replicas (dp_replicate)
  // Only replica 0 sends by default (the other replicas hold the same bytes and need not touch
  // their NICs); `all` lets every replica send, spreading the egress over hsdp times more NICs.
  bool all_replicas_send = false;
  int gpus_per_node = 8;

  int world() const { return fsdp * hsdp; }
  int senders() const { return all_replicas_send ? world() : fsdp; }
  int node_of(int rank) const { return rank / gpus_per_node; }
  // The shard rank (rank inside a replica) that holds expert `expert` of a stack of `experts`.
  int ExpertShard(int64_t experts, int64_t expert) const;
  // The experts of a stack of `experts` that shard rank `shard` holds (may be empty).
  Range ExpertsOf(int64_t experts, int shard) const;
  // Refuses a stack the layout above does not describe: with ep > 1 and fsdp > experts torchtitan
  // shards each expert on dim 1 (FSDP Shard(1)), not by experts. Names `tensor`.
  Status CheckExpertStack(const std::string& tensor, int64_t experts) const;
  Status Validate() const;
  std::string ToString() const;  // "fsdp=64,ep=8,hsdp=1,senders=replica0"
};

enum class ExpertPlacement : uint8_t { kLinear, kRoundRobin };

struct InferenceParallelism {
  int tp = 1;  // attention tensor parallel
  int dp = 1;  // attention data parallel: an engine has tp * dp ranks
  bool expert_parallel = false;
  ExpertPlacement placement = ExpertPlacement::kLinear;
  int replicas = 1;  // engines
  int gpus_per_node = 8;

  int ranks() const { return tp * dp; }
  Status Validate() const;
  std::string ToString() const;  // "tp=1,dp=16,ep=16,placement=linear,replicas=2"
};

// Global experts owned by rank `rank` of an engine with expert parallelism, in local order.
std::vector<int64_t> PlacedExperts(int64_t experts, const InferenceParallelism& inference,
                                   int rank);

// One destination tensor on one inference rank, as a view of the full (unsharded) tensor seen as
// [parts, rows, cols] (1D tensors are [n, 1]): local = parts x (row ranges, concatenated) x one
// column range. Rows past the full tensor's rows are padding (vocab): allocated, never written.
struct LocalLayout {
  std::vector<int64_t> parts;  // global parts (experts) in local order; empty: rank holds nothing
  std::vector<Range> rows;
  Range cols;

  int64_t local_rows() const;
  bool empty() const { return parts.empty(); }
};

// What the layout of one tensor needs to know about it.
struct TensorShape2D {
  std::string name;
  TensorParallelism parallel = TensorParallelism::kUnspecified;
  bool stacked = false;
  int64_t parts = 1;
  int64_t rows = 0;
  int64_t cols = 0;
  bool fp8 = false;
  std::vector<int64_t> source_rows;  // rows of each fused source along dim 0 (cat_dim 0)
};

// The layout of `tensor` on inference rank `rank`. Errors name the tensor and rank: a split that
// does not divide, or an FP8 shard boundary that is not on a 128 block.
Result<LocalLayout> DestinationLayout(const TensorShape2D& tensor, const ModelDims& dims,
                                      const InferenceParallelism& inference, int rank);

// The layout of the FP8 scale tensor that goes with a weight layout: 128-row and 128-column blocks.
LocalLayout ScaleLayout(const LocalLayout& weight, int64_t rows, int64_t cols);

}  // namespace weightsync
