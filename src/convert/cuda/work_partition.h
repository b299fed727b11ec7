// How one launch's tiles are shared among its CTAs: contiguous runs of nearly equal cost, so
// each CTA walks its run in order (no per-tile search over the jobs) while the next tiles are
// already loading, and a mixed batch (fp32 next to fp8 jobs, small next to large) still ends
// on every multiprocessor at about the same time. Plain C++, tested without a GPU.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "convert/cuda/device_job.h"

namespace weightsync::cuda_convert {

// One work-list entry as the partition sees it: its tile count (> 0) and the cost of one tile
// (> 0; bytes moved plus a fixed per-tile overhead, any unit).
struct TileRun {
  int64_t tiles;
  int64_t tile_cost;
};

// Splits the tiles of `runs` (in order) into `parts` contiguous shares, part b starting where
// the cumulative cost reaches b / parts of the total. Every tile lands in exactly one share;
// shares may be empty (count 0) when there are fewer tiles than parts. parts >= 1.
std::vector<WorkStart> SplitTiles(std::span<const TileRun> runs, int parts);

}  // namespace weightsync::cuda_convert
