// TrainerAgent: one trainer rank's side of weightsync. It holds the rank's source shards (views
// of the trainer's own memory), the job's transfer plan, a registered staging ring and gather
// buffer, and connections to every inference rank it writes and every trainer rank it gathers
// for.
//
// Push(step), on every trainer rank at the same step:
//   pause     BeginPush: the push is requested; every inference rank pauses (barrier)
//   scan      every local source shard is checked for NaN/Inf, so bad weights are refused
//             before the first byte reaches an inference rank
//   gather    rows of gathered units are written into their owners' gather buffers; then a
//             barrier of the trainer ranks (which also proves every rank's scan passed)
//   convert   units are converted into the staging ring on a converter thread while ...
//   write     ... this thread posts the writes of converted units (bounded in flight, ring space
//             reused once the writes reading it have read it: transport marks, so the writes
//             of the units between stay in flight)
//   transfer  every rank finished writing (barrier)
//   commit    the final barrier of every trainer and inference rank
// A failure anywhere fails the push on every rank (named) and leaves inference ranks torn at the
// step until a later push commits (docs/contract.md). The source views must hold the step's
// weights and stay unchanged until Push returns.
//
// Threading: Create and Push from one thread; Push runs one converter thread of its own.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/agent_options.h"
#include "agent/push_report.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

class TrainerAgent {
 public:
  // `rank` is the global trainer rank; `sources` names every source tensor this rank holds (in
  // the plan's source format) and views its local shard, contiguous, in host memory. Joins the
  // job and exchanges regions with every rank (all ranks must be starting at the same time).
  static Result<std::unique_ptr<TrainerAgent>> Create(
      const AgentOptions& options, int rank, std::map<std::string, TensorView> sources);
  ~TrainerAgent();
  TrainerAgent(const TrainerAgent&) = delete;
  TrainerAgent& operator=(const TrainerAgent&) = delete;

  // Pushes the weights the source views hold now as `step` (strictly increasing).
  Result<PushReport> Push(uint64_t step);

  int rank() const;
  // The plan's hash and this rank's share of it, for logs.
  std::string Describe() const;

  class Impl;

 private:
  explicit TrainerAgent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightsync::agent
