#include "convert/cuda/work_partition.h"

#include <algorithm>

namespace weightsync::cuda_convert {
namespace {
// Cumulative costs stay far below 2^63, but their products with a part index need more.
__extension__ typedef __int128 Wide;
}  // namespace

std::vector<WorkStart> SplitTiles(std::span<const TileRun> runs, int parts) {
  Wide total = 0;
  int64_t total_tiles = 0;
  for (const TileRun& run : runs) {
    total += static_cast<Wide>(run.tiles) * run.tile_cost;
    total_tiles += run.tiles;
  }
  // First global tile of each share; share `parts` ends at the last tile.
  std::vector<int64_t> first(static_cast<size_t>(parts) + 1, total_tiles);
  size_t job = 0;
  int64_t job_first_tile = 0;  // global index of the job's first tile
  Wide job_first_cost = 0;  // cumulative cost before the job
  for (int b = 0; b < parts; ++b) {
    const Wide target = total * b / parts;
    // The job holding the target cost: the last one whose first tile's cost start is <= target.
    while (job + 1 < runs.size() &&
           job_first_cost + static_cast<Wide>(runs[job].tiles) * runs[job].tile_cost <=
               target) {
      job_first_cost += static_cast<Wide>(runs[job].tiles) * runs[job].tile_cost;
      job_first_tile += runs[job].tiles;
      ++job;
    }
    int64_t local = 0;
    if (!runs.empty()) {
      local = static_cast<int64_t>((target - job_first_cost) / runs[job].tile_cost);
      local = std::min(local, runs[job].tiles);
    }
    first[static_cast<size_t>(b)] = job_first_tile + local;
    if (b > 0) first[b] = std::max(first[b], first[b - 1]);
  }
  // Turn global tile numbers into (job, tile in job) and counts.
  std::vector<WorkStart> starts(static_cast<size_t>(parts));
  job = 0;
  job_first_tile = 0;
  for (int b = 0; b < parts; ++b) {
    const int64_t tile = first[static_cast<size_t>(b)];
    while (job < runs.size() && job_first_tile + runs[job].tiles <= tile) {
      job_first_tile += runs[job].tiles;
      ++job;
    }
    WorkStart& start = starts[static_cast<size_t>(b)];
    start.count = static_cast<int32_t>(first[static_cast<size_t>(b) + 1] - tile);
    // An empty share past the last tile points at entry 0; the kernel reads nothing for it.
    start.job = job < runs.size() ? static_cast<int32_t>(job) : 0;
    start.tile = job < runs.size() ? tile - job_first_tile : 0;
  }
  return starts;
}

}  // namespace weightsync::cuda_convert
