#include "agent/gather_plan.h"

#include <algorithm>

namespace weightsync::agent {

Range SourceRowsFor(const SourcePiece& piece, Range unit_rows) {
  const int64_t a = std::max(piece.rows.begin, unit_rows.begin);
  const int64_t b = std::min(piece.rows.end, unit_rows.end);
  if (a >= b) return {};
  const int64_t first = piece.source_row + (a - piece.rows.begin);
  return {first, first + (b - a)};
}

int64_t GatherPlan::SendBytes(int rank) const {
  int64_t bytes = 0;
  for (const GatherSegment& s : segments) {
    if (s.holder == rank && s.owner != rank) bytes += s.bytes;
  }
  return bytes;
}

GatherPlan BuildGatherPlan(const JobPlan& job) {
  const TransferPlan& plan = job.plan;
  const TrainerParallelism& trainer = plan.options.trainer;
  GatherPlan out;
  out.buffer_bytes.assign(trainer.world(), 0);
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    const ConvertUnit& unit = plan.units[u];
    if (!unit.gathered) continue;
    const PlannedTensor& tensor = plan.tensors[unit.tensor];
    const int replica_base = unit.owner / trainer.fsdp * trainer.fsdp;
    int64_t& offset = out.buffer_bytes[unit.owner];
    for (int64_t part = unit.parts.begin; part < unit.parts.end; ++part) {
      const auto& pieces = tensor.pieces[part];
      for (int32_t i = 0; i < static_cast<int32_t>(pieces.size()); ++i) {
        const SourcePiece& piece = pieces[i];
        const Range rows = SourceRowsFor(piece, unit.rows);
        const int64_t row_bytes = piece.cols * piece.element_bytes;
        // Cut the rows at shard boundaries: each run has one holder.
        for (int64_t r = rows.begin; r < rows.end;) {
          int shard;
          int64_t end;
          if (piece.index >= 0) {
            shard = trainer.ExpertShard(piece.stack_experts, piece.index);
            end = rows.end;
          } else {
            shard = static_cast<int>(ChunkOf(piece.tensor_rows, trainer.fsdp, r));
            end = std::min(rows.end, ChunkRange(piece.tensor_rows, trainer.fsdp, shard).end);
          }
          GatherSegment s;
          s.unit = u;
          s.part = part;
          s.piece = i;
          s.source_rows = {r, end};
          s.holder = replica_base + shard;
          s.owner = unit.owner;
          s.buffer_offset = offset;
          s.bytes = (end - r) * row_bytes;
          out.segments.push_back(s);
          offset += s.bytes;
          r = end;
        }
      }
    }
    // Keep every unit's sources on the slot alignment (vector loads, DMA).
    offset = (offset + 255) / 256 * 256;
  }
  return out;
}

}  // namespace weightsync::agent
