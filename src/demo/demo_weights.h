// Source weights for `weightsync demo` and the end-to-end tests: what a training step would leave
// in the trainer's parameters, generated deterministically from (seed, step, tensor, element), so
// every process of a demo can produce the same full tensors without sending them around.
//
// Values: a per-tensor pseudo-random pattern whose magnitude changes from one 128x128 block to the
// next (2^-2 down to 2^-12, so FP8 scales differ and small blocks reach e4m3 subnormals), some
// all-zero blocks, and a small per-step change of every element, like an optimizer step.
//
// Threading: Fill from one thread; views may be read from any thread between Fills.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/job_plan.h"
#include "weightsync/tensor.h"

namespace weightsync::demo {

class DemoWeights {
 public:
  DemoWeights(const agent::JobPlan& job, uint64_t seed);

  // Regenerates every full source tensor for `step`.
  void Fill(uint64_t step);

  // The full (unsharded) source tensors, in the job's source format.
  const std::map<std::string, TensorView>& full() const { return views_; }
  // Views of the shards trainer rank `rank` holds (slices of the full tensors, contiguous).
  Result<std::map<std::string, TensorView>> ShardViews(int rank) const;

 private:
  const agent::JobPlan& job_;
  uint64_t seed_;
  std::map<std::string, std::vector<uint8_t>> buffers_;
  std::map<std::string, TensorView> views_;
};

}  // namespace weightsync::demo
