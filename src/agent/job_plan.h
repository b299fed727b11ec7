// The plan every rank of a job computes from the same AgentOptions: the model spec, the trainer's
// source tensors (global names, shapes, dtypes), the transfer plan, and what each rank must hold.
//
// Source shards (FSDP2 in torchtitan's rank order, src/plan/layout.h): dim 0 of every tensor is
// split over the `fsdp` ranks of a replica with torch.chunk semantics; a [E, rows, cols] expert
// stack is split by experts over the `ep` ranks (the fastest-varying rank index), then over each ep
// rank's fsdp / ep ranks (TrainerParallelism::ExpertsOf). Destination tensors: the plan's layouts.
//
// Threading: JobPlan is immutable after BuildJobPlan and may be shared.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/agent_options.h"
#include "model/conversion_plan.h"
#include "model/model_spec.h"
#include "plan/transfer_plan.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

// What one trainer rank holds of one source tensor.
struct SourceShard {
  std::string name;
  Shape global_shape;
  DType dtype = DType::kBF16;
  bool stacked = false;  // [E, rows, cols]: dim 0 counts experts
  Range first_dim;       // the rows (or experts) of dim 0 this rank holds
  Shape local_shape() const;
};

// One tensor an inference rank must register: a destination weight or its FP8 scale.
struct DestinationTensor {
  std::string name;
  DType dtype = DType::kBF16;
  Shape shape;
  int32_t tensor = 0;  // index into TransferPlan::tensors
  bool scale = false;
  int64_t bytes() const;
};

struct JobPlan {
  ModelSpec spec;
  std::vector<SourceTensor> sources;  // global, in the trainer's source format
  std::map<std::string, size_t> source_index;
  TransferPlan plan;

  // The shards trainer rank `rank` (global) holds, in source order.
  std::vector<SourceShard> ShardsOf(int rank) const;
  // The shard of `source` that shard rank `shard` (rank inside its replica) holds.
  SourceShard ShardOf(const SourceTensor& source, int shard) const;
  // The tensors inference rank `rank` (global: replica * ranks + local) must register.
  std::vector<DestinationTensor> DestinationsOf(int rank) const;
  const SourceTensor* FindSource(const std::string& name) const;
  // The conversion specs of the job's formats over its sources: what a direct (unplanned)
  // conversion of whole tensors runs, as `weightsync convert` does.
  Result<ConversionPlan> Conversions() const;

  int trainer_world() const { return plan.options.trainer.world(); }
  int inference_world() const {
    return plan.options.inference.ranks() * plan.options.inference.replicas;
  }
};

// Loads the spec, lists the sources and builds (and validates) the plan. Errors name the model,
// format or tensor.
Result<JobPlan> BuildJobPlan(const AgentOptions& options);

// Checks a rank's tensors against what the plan expects: every expected name present, with the
// expected dtype and shape, contiguous, on `device` kinds the caller allows; no unknown names.
// `what` names the rank in errors ("trainer 1", "inference 0").
Status CheckSources(const std::vector<SourceShard>& expected,
                    const std::map<std::string, TensorView>& given, std::string_view what);
Status CheckDestinations(const std::vector<DestinationTensor>& expected,
                         const std::map<std::string, TensorView>& given, std::string_view what);

}  // namespace weightsync::agent
