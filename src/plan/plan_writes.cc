// Writes: the byte ranges that carry a convert unit's slot into every rank that holds its rows.
#include <algorithm>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"
#include "plan/slot_geometry.h"

namespace weightsync::plan_internal {
namespace {

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
  size_t segment = 0;
  while (segment < slot.segments.size() && !(slot.segments[segment] == layout.cols)) ++segment;
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
        const int64_t slot_element = slot.ElementOffset(segment, piece, *it, a);
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

Status AppendWrites(const PlannedTensor& tensor, int32_t unit_id, const ConvertUnit& unit,
                    const InferenceParallelism& inference, std::vector<PlannedWrite>& out) {
  const SlotGeometry weight = WeightSlot(tensor, unit);
  const SlotGeometry scale = ScaleSlot(tensor, unit);
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

namespace weightsync {

int64_t RegionBytes(const PlannedTensor& tensor, const LocalLayout& layout, bool scale) {
  if (layout.empty()) return 0;
  if (!scale) {
    return static_cast<int64_t>(layout.parts.size()) * layout.local_rows() * layout.cols.size() *
           tensor.element_bytes();
  }
  const LocalLayout s = ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols);
  return static_cast<int64_t>(s.parts.size()) * s.local_rows() * s.cols.size() * 4;
}

SlotGeometry WeightSlot(const PlannedTensor& tensor, const ConvertUnit& unit) {
  return SlotGeometry(unit.parts, unit.rows, tensor.segments, tensor.row_groups);
}

SlotGeometry ScaleSlot(const PlannedTensor& tensor, const ConvertUnit& unit) {
  std::vector<Range> segments;
  for (const Range& s : tensor.segments) {
    segments.push_back({s.begin / kFp8BlockSize, plan_internal::CeilDiv(s.end, kFp8BlockSize)});
  }
  return SlotGeometry(unit.parts,
                      {unit.rows.begin / kFp8BlockSize,
                       plan_internal::CeilDiv(unit.rows.end, kFp8BlockSize)},
                      segments, tensor.scale_row_groups);
}

}  // namespace weightsync
