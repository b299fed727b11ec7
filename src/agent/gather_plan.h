// Gathers: the source rows of "gathered" convert units (an FP8 block straddling FSDP shards, or a
// tensor too small to write in slivers) travel from the trainer ranks holding them to the unit's
// owner before it converts.
//
// Each trainer rank keeps a gather buffer, registered with the transport, holding the sources of
// every gathered unit it owns, unit after unit: for each part and each source piece the unit
// needs, that piece's rows as a dense [rows, cols] matrix in the source dtype. Every rank computes
// the same GatherPlan from the plan, so holders know where to write without asking.
//
// The buffer is separate from the staging ring (which the plan reuses across units): gathers are
// written before any unit converts, so they must not share memory that a conversion reuses.
//
// Threading: an immutable value.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/job_plan.h"

namespace weightsync::agent {

// A run of source rows held by one trainer rank, and where they go in the owner's gather buffer.
struct GatherSegment {
  int32_t unit = 0;
  int64_t part = 0;       // global part (expert) of the destination
  int32_t piece = 0;      // index into PlannedTensor::pieces[part]
  Range source_rows;      // rows of the source tensor (of its expert, when stacked)
  int32_t holder = 0;     // global trainer rank holding them
  int32_t owner = 0;      // global trainer rank converting the unit
  int64_t buffer_offset = 0;  // bytes into the owner's gather buffer
  int64_t bytes = 0;
};

struct GatherPlan {
  std::vector<int64_t> buffer_bytes;  // per trainer rank
  std::vector<GatherSegment> segments;  // grouped by unit, in part and piece order

  // Bytes trainer rank `rank` sends to other ranks (for its send staging).
  int64_t SendBytes(int rank) const;
};

GatherPlan BuildGatherPlan(const JobPlan& job);

// Dest rows [a, b) of `piece` that a unit covering `rows` needs, as source rows (empty when none).
Range SourceRowsFor(const SourcePiece& piece, Range unit_rows);

}  // namespace weightsync::agent
