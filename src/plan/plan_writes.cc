// Writes: the byte ranges that carry a convert unit's slot into every rank that holds its rows.
#include <algorithm>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"

namespace weightsync::plan_internal {
namespace {

// Where the rows of one unit sit in its slot (weight or scale; scale rows are 128-blocks): for
// each column segment, the row groups one after the other, each a [parts, group rows, segment
// columns] matrix.
struct SlotGeometry {
  Range parts;
  Range rows;                   // the unit's rows
  std::vector<Range> segments;  // column segments
  struct Piece {
    Range rows;          // full-tensor rows, inside the unit
    int64_t group_base;  // elements of the groups before this one, per column of the segment
    int64_t group_rows;  // the unit's rows in this piece's group
    int64_t index;       // this piece's first row within its group
  };
  std::vector<Piece> pieces;  // ascending rows

  SlotGeometry(Range unit_parts, Range unit_rows, std::vector<Range> column_segments,
               const std::vector<std::vector<Range>>& groups)
      : parts(unit_parts), rows(unit_rows), segments(std::move(column_segments)) {
    int64_t base = 0;
    for (const auto& group : groups) {
      int64_t in_group = 0;
      const size_t first = pieces.size();
      for (const Range& r : group) {
        const Range mine{std::max(r.begin, rows.begin), std::min(r.end, rows.end)};
        if (mine.size() <= 0) continue;
        pieces.push_back({mine, base, 0, in_group});
        in_group += mine.size();
      }
      for (size_t i = first; i < pieces.size(); ++i) pieces[i].group_rows = in_group;
      base += parts.size() * in_group;
    }
    std::sort(pieces.begin(), pieces.end(),
              [](const Piece& a, const Piece& b) { return a.rows.begin < b.rows.begin; });
  }
};

void Append(std::vector<PlannedWrite>& out, size_t first_of_target, PlannedWrite write) {
  if (out.size() > first_of_target) {
    PlannedWrite& last = out.back();
    if (last.scale == write.scale && last.slot_offset + last.bytes == write.slot_offset &&
        last.dest_offset + last.bytes == write.dest_offset) {
      last.bytes += write.bytes;
      return;
    }
  }
  out.push_back(write);
}

// Writes of one slot (weight or scale) of a unit into one rank's tensor with `layout`.
Status AppendSlotWrites(const std::string& name, const SlotGeometry& slot,
                        const LocalLayout& layout, int64_t full_rows, int64_t element_bytes,
                        PlannedWrite base, std::vector<PlannedWrite>& out) {
  const int64_t local_rows = layout.local_rows();
  const int64_t local_cols = layout.cols.size();
  int64_t segment_offset = 0;  // elements before this segment in the slot
  size_t segment = 0;
  for (; segment < slot.segments.size(); ++segment) {
    if (slot.segments[segment] == layout.cols) break;
    segment_offset += slot.parts.size() * slot.rows.size() * slot.segments[segment].size();
  }
  if (segment == slot.segments.size()) {
    return Internal("tensor ", name, ": rank ", base.rank, " holds columns [", layout.cols.begin,
                    ", ", layout.cols.end, "), which is no slot segment");
  }
  const size_t first = out.size();
  auto first_part = std::lower_bound(layout.parts.begin(), layout.parts.end(), slot.parts.begin);
  for (auto it = first_part; it != layout.parts.end() && *it < slot.parts.end; ++it) {
    const int64_t local_part = it - layout.parts.begin();
    int64_t local_row = 0;
    for (const Range& range : layout.rows) {
      const int64_t begin = std::max(range.begin, slot.rows.begin);
      const int64_t end = std::min({range.end, slot.rows.end, full_rows});
      for (const SlotGeometry::Piece& piece : slot.pieces) {
        const int64_t a = std::max(begin, piece.rows.begin);
        const int64_t b = std::min(end, piece.rows.end);
        if (a >= b) continue;
        PlannedWrite write = base;
        const int64_t row_in_group = piece.index + (a - piece.rows.begin);
        const int64_t slot_element =
            segment_offset + piece.group_base * local_cols +
            ((*it - slot.parts.begin) * piece.group_rows + row_in_group) * local_cols;
        const int64_t dest_element =
            (local_part * local_rows + local_row + (a - range.begin)) * local_cols;
        write.slot_offset = slot_element * element_bytes;
        write.dest_offset = dest_element * element_bytes;
        write.bytes = (b - a) * local_cols * element_bytes;
        Append(out, first, write);
      }
      local_row += range.size();
    }
  }
  return Status::Ok();
}

}  // namespace

int64_t RegionBytes(const PlannedTensor& tensor, const LocalLayout& layout, bool scale) {
  if (layout.empty()) return 0;
  if (!scale) {
    return static_cast<int64_t>(layout.parts.size()) * layout.local_rows() * layout.cols.size() *
           tensor.element_bytes();
  }
  const LocalLayout s = ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols);
  return static_cast<int64_t>(s.parts.size()) * s.local_rows() * s.cols.size() * 4;
}

Status AppendWrites(const PlannedTensor& tensor, int32_t unit_id, const ConvertUnit& unit,
                    const InferenceParallelism& inference, std::vector<PlannedWrite>& out) {
  const SlotGeometry weight(unit.parts, unit.rows, tensor.segments, tensor.row_groups);
  std::vector<Range> scale_segments;
  for (const Range& s : tensor.segments) {
    scale_segments.push_back({s.begin / kFp8BlockSize, CeilDiv(s.end, kFp8BlockSize)});
  }
  const SlotGeometry scale(unit.parts,
                           {unit.rows.begin / kFp8BlockSize, CeilDiv(unit.rows.end, kFp8BlockSize)},
                           scale_segments, tensor.scale_row_groups);
  const int64_t scale_rows = CeilDiv(tensor.shape.rows, kFp8BlockSize);
  for (int32_t replica = 0; replica < inference.replicas; ++replica) {
    for (int32_t rank = 0; rank < inference.ranks(); ++rank) {
      const LocalLayout& layout = tensor.layouts[rank];
      if (layout.empty()) continue;
      PlannedWrite base;
      base.unit = unit_id;
      base.replica = replica;
      base.rank = rank;
      WS_RETURN_IF_ERROR(AppendSlotWrites(tensor.shape.name, weight, layout, tensor.shape.rows,
                                          tensor.element_bytes(), base, out));
      if (!tensor.shape.fp8) continue;
      base.scale = true;
      WS_RETURN_IF_ERROR(AppendSlotWrites(tensor.scale_name, scale,
                                          ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols),
                                          scale_rows, 4, base, out));
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::plan_internal
