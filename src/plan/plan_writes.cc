// Writes: the byte ranges that carry a convert unit's slot into every rank that holds its rows.
#include <algorithm>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"

namespace weightsync::plan_internal {
namespace {

// A matrix view of a slot or a local tensor, in elements: rows of one [parts, rows, cols] layout.
struct Geometry {
  Range parts;
  std::vector<Range> segments;  // slot column segments (scale: in 128-blocks)
  Range rows;                   // unit rows (scale: in 128-blocks)
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
Status AppendSlotWrites(const std::string& name, const Geometry& slot, const LocalLayout& layout,
                        int64_t full_rows, int64_t element_bytes, PlannedWrite base,
                        std::vector<PlannedWrite>& out) {
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
      if (begin < end) {
        PlannedWrite write = base;
        const int64_t slot_element =
            segment_offset +
            ((*it - slot.parts.begin) * slot.rows.size() + (begin - slot.rows.begin)) * local_cols;
        const int64_t dest_element =
            (local_part * local_rows + local_row + (begin - range.begin)) * local_cols;
        write.slot_offset = slot_element * element_bytes;
        write.dest_offset = dest_element * element_bytes;
        write.bytes = (end - begin) * local_cols * element_bytes;
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
  Geometry weight{unit.parts, tensor.segments, unit.rows};
  Geometry scale{unit.parts, {}, {unit.rows.begin / kFp8BlockSize,
                                  CeilDiv(unit.rows.end, kFp8BlockSize)}};
  for (const Range& s : tensor.segments) {
    scale.segments.push_back({s.begin / kFp8BlockSize, CeilDiv(s.end, kFp8BlockSize)});
  }
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
      WS_RETURN_IF_ERROR(AppendSlotWrites(
          tensor.scale_name, scale, ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols),
          scale_rows, 4, base, out));
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::plan_internal
