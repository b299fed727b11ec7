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
#include <memory>
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

// The same weights generated on a GPU (too large to generate on the host and copy at real model
// sizes): the shards of one trainer rank, or every full source tensor (for verification).
class DeviceDemoWeights {
 public:
  // `trainer_rank` >= 0: that rank's shards; -1: the full tensors. On CUDA device `device`.
  static Result<std::unique_ptr<DeviceDemoWeights>> Create(const agent::JobPlan& job,
                                                           uint64_t seed, int device,
                                                           int trainer_rank);
  ~DeviceDemoWeights();
  DeviceDemoWeights(const DeviceDemoWeights&) = delete;
  DeviceDemoWeights& operator=(const DeviceDemoWeights&) = delete;

  Status Fill(uint64_t step);
  const std::map<std::string, TensorView>& views() const { return views_; }

 private:
  DeviceDemoWeights() = default;
  struct Entry {
    TensorView view;
    uint64_t hash = 0;
    int64_t first_element = 0;  // of the shard, in the full tensor
    int64_t cols = 1;
  };
  std::vector<Entry> entries_;
  std::map<std::string, TensorView> views_;
  int device_ = 0;
};

}  // namespace weightsync::demo
