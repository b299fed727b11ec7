// Convert units: cutting tensors into work, choosing who does it, and where it is staged.
#include <algorithm>
#include <functional>
#include <numeric>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"

namespace weightsync::plan_internal {
namespace {

// Shard holding the source of destination row `row` of `piece`.
int ShardOf(const SourcePiece& piece, int64_t row, const TrainerParallelism& trainer) {
  if (piece.index >= 0) return trainer.ExpertShard(piece.stack_experts, piece.index);
  return static_cast<int>(
      ChunkOf(piece.tensor_rows, trainer.fsdp, piece.source_row + (row - piece.rows.begin)));
}

// Calls fn(rows, shard, piece) for every maximal run of `rows` of `piece` held by one shard.
template <typename Fn>
void ForEachShardRun(const SourcePiece& piece, Range rows, const TrainerParallelism& trainer,
                     Fn&& fn) {
  const int64_t begin = std::max(rows.begin, piece.rows.begin);
  const int64_t end = std::min(rows.end, piece.rows.end);
  if (begin >= end) return;
  if (piece.index >= 0) {
    fn(Range{begin, end}, ShardOf(piece, begin, trainer));
    return;
  }
  const int64_t chunk = CeilDiv(piece.tensor_rows, trainer.fsdp);
  for (int64_t row = begin; row < end;) {
    const int64_t source = piece.source_row + (row - piece.rows.begin);
    const int64_t next = std::min(end, row + (chunk - source % chunk));
    fn(Range{row, next}, ShardOf(piece, row, trainer));
    row = next;
  }
}

int64_t UnitScaleBytes(const PlannedTensor& tensor, Range parts, Range rows) {
  if (!tensor.shape.fp8) return 0;
  const int64_t block_rows = CeilDiv(rows.end, kFp8BlockSize) - rows.begin / kFp8BlockSize;
  return parts.size() * block_rows * tensor.scale_cols() * 4;
}

ConvertUnit MakeUnit(const std::vector<PlannedTensor>& tensors, int32_t t, Range parts, Range rows,
                     int shard) {
  const PlannedTensor& tensor = tensors[t];
  ConvertUnit unit;
  unit.tensor = t;
  unit.parts = parts;
  unit.rows = rows;
  unit.gathered = shard < 0;
  unit.owner = shard;
  unit.weight_bytes = parts.size() * rows.size() * tensor.shape.cols * tensor.element_bytes();
  unit.scale_bytes = UnitScaleBytes(tensor, parts, rows);
  for (int64_t p = parts.begin; p < parts.end; ++p) {
    for (const SourcePiece& piece : tensor.pieces[p]) {
      const int64_t overlap =
          std::min(rows.end, piece.rows.end) - std::max(rows.begin, piece.rows.begin);
      if (overlap > 0) unit.source_bytes += overlap * piece.cols * piece.element_bytes;
    }
  }
  return unit;
}

// Splits rows [segment) of parts into units of at most `unit_bytes`, on `granule`-row steps.
void CutRows(const std::vector<PlannedTensor>& tensors, int32_t t, Range parts, Range segment,
             int shard, int64_t granule, const PlanOptions& options,
             std::vector<ConvertUnit>& out) {
  const PlannedTensor& tensor = tensors[t];
  const int64_t row_bytes =
      std::max<int64_t>(1, parts.size() * tensor.shape.cols * tensor.element_bytes());
  const int64_t step = std::max(granule, options.unit_bytes / row_bytes / granule * granule);
  for (int64_t row = segment.begin; row < segment.end; row += step) {
    out.push_back(MakeUnit(tensors, t, parts, {row, std::min(segment.end, row + step)}, shard));
  }
}

// Experts whose sources are whole [E, ...] stacks: each expert lives on one rank. Consecutive
// experts of one rank become one unit (one write per receiving rank when placement is linear).
void CutExpertStack(const std::vector<PlannedTensor>& tensors, int32_t t,
                    const PlanOptions& options, std::vector<ConvertUnit>& out) {
  const PlannedTensor& tensor = tensors[t];
  const int64_t part_bytes =
      std::max<int64_t>(1, tensor.shape.rows * tensor.shape.cols * tensor.element_bytes());
  const int64_t max_parts = std::max<int64_t>(1, options.unit_bytes / part_bytes);
  auto shard_of = [&](int64_t p) {
    int shard = ShardOf(tensor.pieces[p][0], 0, options.trainer);
    for (const SourcePiece& piece : tensor.pieces[p]) {
      if (ShardOf(piece, 0, options.trainer) != shard) return -1;  // sources on different ranks
    }
    return shard;
  };
  const Range all_rows{0, tensor.shape.rows};
  for (int64_t p = 0; p < tensor.shape.parts;) {
    const int shard = shard_of(p);
    int64_t end = p + 1;
    while (shard >= 0 && end < tensor.shape.parts && end - p < max_parts &&
           shard_of(end) == shard) {
      ++end;
    }
    out.push_back(MakeUnit(tensors, t, {p, end}, all_rows, shard));
    p = end;
  }
}

// Rows grouped by fate: converted by the shard holding every row of each of their granules
// (whole 128-row blocks for FP8: a block's scale needs all its rows), or gathered (-1).
std::vector<OwnerRun> Segments(const std::vector<OwnerRun>& runs, int64_t rows, int64_t granule) {
  if (granule == 1) return runs;  // any row converts alone
  std::vector<OwnerRun> out;
  size_t run = 0;
  for (int64_t row = 0; row < rows; row += granule) {
    const int64_t end = std::min(rows, row + granule);
    while (runs[run].rows.end <= row) ++run;
    const int shard = runs[run].rows.end >= end ? runs[run].shard : -1;
    if (!out.empty() && out.back().shard == shard) {
      out.back().rows.end = end;
    } else {
      out.push_back({{row, end}, shard});
    }
  }
  return out;
}

}  // namespace

std::vector<OwnerRun> OwnerRuns(const PlannedTensor& tensor, int64_t part,
                                const TrainerParallelism& trainer) {
  const Range all{0, tensor.shape.rows};
  std::vector<int64_t> bounds = {all.begin, all.end};
  for (const SourcePiece& piece : tensor.pieces[part]) {
    ForEachShardRun(piece, all, trainer, [&](Range r, int) {
      bounds.push_back(r.begin);
      bounds.push_back(r.end);
    });
  }
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::vector<OwnerRun> runs;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const Range r{bounds[i], bounds[i + 1]};
    int shard = -2;  // none seen yet
    for (const SourcePiece& piece : tensor.pieces[part]) {
      if (r.begin < piece.rows.begin || r.begin >= piece.rows.end) continue;
      const int s = ShardOf(piece, r.begin, trainer);
      shard = (shard == -2 || shard == s) ? s : -1;
    }
    if (shard == -2) shard = -1;
    if (!runs.empty() && runs.back().shard == shard && runs.back().rows.end == r.begin) {
      runs.back().rows.end = r.end;
    } else {
      runs.push_back({r, shard});
    }
  }
  return runs;
}

std::vector<ConvertUnit> CutUnits(const std::vector<PlannedTensor>& tensors,
                                  const PlanOptions& options) {
  std::vector<ConvertUnit> out;
  for (int32_t t = 0; t < static_cast<int32_t>(tensors.size()); ++t) {
    const PlannedTensor& tensor = tensors[t];
    bool expert_stack = tensor.shape.stacked;
    for (const auto& pieces : tensor.pieces) {
      for (const SourcePiece& piece : pieces) expert_stack &= piece.index >= 0;
    }
    if (expert_stack) {
      CutExpertStack(tensors, t, options, out);
      continue;
    }
    const int64_t granule = tensor.shape.fp8 ? kFp8BlockSize : 1;
    for (int64_t p = 0; p < tensor.shape.parts; ++p) {
      const Range part{p, p + 1};
      std::vector<OwnerRun> runs = OwnerRuns(tensor, p, options.trainer);
      // Shards this small cost more in per-write overhead (one write per shard per receiving rank)
      // than a gather costs: convert the whole part on one rank.
      int64_t holders = 0;
      for (const OwnerRun& run : runs) holders += run.shard >= 0 ? 1 : 0;
      const ConvertUnit whole = MakeUnit(tensors, t, part, {0, tensor.shape.rows}, -1);
      if ((whole.weight_bytes + whole.scale_bytes) <
          options.min_shard_bytes * std::max<int64_t>(1, holders)) {
        CutRows(tensors, t, part, {0, tensor.shape.rows}, -1, granule, options, out);
        continue;
      }
      const std::vector<OwnerRun> segments = Segments(runs, tensor.shape.rows, granule);
      for (const OwnerRun& segment : segments) {
        CutRows(tensors, t, part, segment.rows, segment.shard, granule, options, out);
      }
    }
  }
  return out;
}

namespace {

// Each sender's units converted from its own shard (not gathered): the ones a rebalance may move.
std::vector<std::vector<int32_t>> UnitsConvertedInPlace(const TransferPlan& plan, int senders) {
  std::vector<std::vector<int32_t>> owned(senders);
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    if (!plan.units[u].gathered) owned[plan.units[u].owner].push_back(u);
  }
  return owned;
}

// The most and the least loaded sender in [first, last).
std::pair<int, int> MostAndLeastLoaded(const std::vector<int64_t>& load, int first, int last) {
  int most = first, least = first;
  for (int r = first; r < last; ++r) {
    if (load[r] > load[most]) most = r;
    if (load[r] < load[least]) least = r;
  }
  return {most, least};
}

// Moves whole sharded units from the most to the least loaded sender of each node until they are
// within tolerance: uneven torch.chunk splits (384 experts over 256 ranks: 2, 2, 2, 0, ...) leave
// some ranks idle, and an NVLink copy costs far less than a NIC byte.
void RebalanceNodes(TransferPlan& plan, std::vector<int64_t>& load,
                    const std::function<int64_t(const ConvertUnit&)>& cost) {
  const TrainerParallelism& trainer = plan.options.trainer;
  const int senders = trainer.senders();
  std::vector<std::vector<int32_t>> owned = UnitsConvertedInPlace(plan, senders);
  for (int first = 0; first < senders; first += trainer.gpus_per_node) {
    const int last = std::min(senders, first + trainer.gpus_per_node);
    while (true) {
      const auto [most, least] = MostAndLeastLoaded(load, first, last);
      const int64_t gap = load[most] - load[least];
      if (gap * 100 <= load[most] * plan.options.rebalance_tolerance_percent) break;
      // The largest unit that still narrows the gap: at most half of it.
      int best = -1;
      for (size_t i = 0; i < owned[most].size(); ++i) {
        const int64_t c = cost(plan.units[owned[most][i]]);
        if (c > 0 && 2 * c <= gap &&
            (best < 0 || c > cost(plan.units[owned[most][static_cast<size_t>(best)]]))) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0) break;
      const int32_t u = owned[most][static_cast<size_t>(best)];
      owned[most].erase(owned[most].begin() + best);
      ConvertUnit& unit = plan.units[u];
      unit.owner = least;
      unit.gathered = true;
      unit.moved = true;
      load[most] -= cost(unit);
      load[least] += cost(unit);
    }
  }
}

// Then moves whole sharded units across nodes, from the sender with the most load to the one with
// the least, while a move lowers the peak load. torchtitan's rank order puts the idle ranks of an
// uneven expert split (384 experts, ep=64, efsdp=4: 2, 2, 2, 0) on nodes of their own, out of
// RebalanceNodes' reach. A move across nodes is a NIC gather: the holder still sends the unit's
// source rows, so it gains the unit's cost less those bytes (worth it when the unit is written to
// several inference replicas, whose egress dwarfs the bf16 source).
void RebalanceAcrossNodes(TransferPlan& plan, std::vector<int64_t>& load,
                          const std::function<int64_t(const ConvertUnit&)>& cost) {
  const TrainerParallelism& trainer = plan.options.trainer;
  const int senders = trainer.senders();
  std::vector<std::vector<int32_t>> owned = UnitsConvertedInPlace(plan, senders);
  // The rank a unit moved to `owner` gathers its source rows from: its holder in that replica.
  auto holder_for = [&](const ConvertUnit& unit, int owner) {
    return owner / trainer.fsdp * trainer.fsdp + unit.owner % trainer.fsdp;
  };
  while (true) {
    const auto [most, least] = MostAndLeastLoaded(load, 0, senders);
    const int64_t gap = load[most] - load[least];
    if (gap * 100 <= load[most] * plan.options.rebalance_tolerance_percent) break;
    // The unit whose move leaves the lowest peak over `most`, `least` and the rank it gathers
    // from (in the new owner's replica); only moves that lower `most`'s load count.
    int best = -1;
    int64_t best_peak = load[most];
    for (size_t i = 0; i < owned[most].size(); ++i) {
      const ConvertUnit& unit = plan.units[owned[most][i]];
      const int holder = holder_for(unit, least);
      const int64_t nic = trainer.node_of(holder) != trainer.node_of(least) ? unit.source_bytes : 0;
      const int64_t c = cost(unit);
      int64_t peak = std::max(load[most] - c + (holder == most ? nic : 0), load[least] + c);
      if (holder != most && holder != least) peak = std::max(peak, load[holder] + nic);
      if (peak < best_peak) {
        best = static_cast<int>(i);
        best_peak = peak;
      }
    }
    if (best < 0) break;
    const int32_t u = owned[most][static_cast<size_t>(best)];
    owned[most].erase(owned[most].begin() + best);
    ConvertUnit& unit = plan.units[u];
    const int holder = holder_for(unit, least);
    if (trainer.node_of(holder) != trainer.node_of(least)) load[holder] += unit.source_bytes;
    load[most] -= cost(unit);
    load[least] += cost(unit);
    unit.owner = least;
    unit.gathered = true;
    unit.moved = true;
  }
}

}  // namespace

Status AssignOwners(TransferPlan& plan) {
  const TrainerParallelism& trainer = plan.options.trainer;
  const int world = trainer.world(), senders = trainer.senders(), fsdp = trainer.fsdp;
  const int sending_replicas = trainer.all_replicas_send ? trainer.hsdp : 1;
  plan.trainer.assign(world, {});
  std::vector<int64_t> load(world, 0);
  auto cost = [&](const ConvertUnit& unit) {
    return unit.egress_bytes + unit.write_count * plan.options.write_cost_bytes;
  };
  // Fixed owners first, then the flexible units largest first onto the least loaded candidate
  // (longest-processing-time-first); ties go to the lowest rank, so every rank computes the same.
  std::vector<int32_t> flexible;
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    ConvertUnit& unit = plan.units[u];
    if (!unit.gathered && sending_replicas == 1) {
      load[unit.owner] += cost(unit);
    } else {
      flexible.push_back(u);
    }
  }
  std::stable_sort(flexible.begin(), flexible.end(),
                   [&](int32_t a, int32_t b) { return cost(plan.units[a]) > cost(plan.units[b]); });
  for (int32_t u : flexible) {
    ConvertUnit& unit = plan.units[u];
    int best = -1;
    auto consider = [&](int rank) {
      if (best < 0 || load[rank] < load[best]) best = rank;
    };
    if (unit.gathered) {
      for (int rank = 0; rank < senders; ++rank) consider(rank);
    } else {
      for (int replica = 0; replica < sending_replicas; ++replica)
        consider(replica * fsdp + unit.owner);
    }
    unit.owner = best;
    load[best] += cost(unit);
  }
  RebalanceNodes(plan, load, cost);
  RebalanceAcrossNodes(plan, load, cost);

  // Gathers: the owner fetches every source row it does not hold from its own replica's shards.
  for (ConvertUnit& unit : plan.units) {
    if (!unit.gathered) continue;
    const PlannedTensor& tensor = plan.tensors[unit.tensor];
    const int base = unit.owner / fsdp * fsdp;
    for (int64_t p = unit.parts.begin; p < unit.parts.end; ++p) {
      for (const SourcePiece& piece : tensor.pieces[p]) {
        ForEachShardRun(piece, unit.rows, trainer, [&](Range rows, int shard) {
          const int holder = base + shard;
          if (holder == unit.owner) return;
          const int64_t bytes = rows.size() * piece.cols * piece.element_bytes;
          unit.gather_bytes += bytes;
          if (trainer.node_of(holder) != trainer.node_of(unit.owner)) {
            unit.gather_nic_bytes += bytes;
            plan.trainer[holder].gather_nic_out_bytes += bytes;
          }
        });
      }
    }
  }

  // Each rank runs its units in plan order through a ring of staging memory.
  plan.schedule.assign(world, {});
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    plan.schedule[plan.units[u].owner].push_back(u);
  }
  for (int rank = 0; rank < world; ++rank) {
    TrainerRankLoad& load_of = plan.trainer[rank];
    int64_t position = 0;
    for (int32_t u : plan.schedule[rank]) {
      ConvertUnit& unit = plan.units[u];
      unit.staging_bytes = AlignUp(unit.weight_bytes) + AlignUp(unit.scale_bytes) +
                           (unit.gathered ? AlignUp(unit.source_bytes) : 0);
      if (unit.staging_bytes > plan.options.staging_budget) {
        return ResourceExhausted(
            "tensor ", plan.tensors[unit.tensor].shape.name, " parts [", unit.parts.begin, ", ",
            unit.parts.end, ") rows [", unit.rows.begin, ", ", unit.rows.end, ") on trainer rank ",
            rank, " needs ", unit.staging_bytes, " bytes of staging, over the budget of ",
            plan.options.staging_budget, " (raise plan.staging_budget or lower plan.unit_bytes)");
      }
      if (position + unit.staging_bytes > plan.options.staging_budget) position = 0;
      unit.staging_offset = position;
      position += unit.staging_bytes;
      load_of.staging_bytes = std::max(load_of.staging_bytes, position);
      load_of.write_bytes += unit.egress_bytes;
      load_of.writes += unit.write_count;
      load_of.units += 1;
      load_of.gather_in_bytes += unit.gather_bytes;
      load_of.gather_nic_in_bytes += unit.gather_nic_bytes;
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::plan_internal
