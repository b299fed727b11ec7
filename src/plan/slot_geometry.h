// Where the rows of one convert unit sit in its staging slot (docs/plan.md, "Slots").
//
// A slot (weight, or FP8 scale in 128-blocks) stores, for each column segment of the destination,
// the tensor's row groups one after the other, each a [parts, group rows, segment columns]
// matrix. The planner cuts writes out of this layout (plan_writes.cc) and the trainer agent
// converts into it (src/agent), so both read the one definition here.
//
// Threading: plain values.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "plan/layout.h"
#include "plan/transfer_plan.h"

namespace weightsync {

struct SlotGeometry {
  Range parts;
  Range rows;                   // the unit's rows (or 128-row blocks, for a scale slot)
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

  // Elements of the slot before segment `s`.
  int64_t SegmentOffset(size_t s) const {
    int64_t offset = 0;
    for (size_t i = 0; i < s; ++i) offset += parts.size() * rows.size() * segments[i].size();
    return offset;
  }
  // Element offset of (part, row) in segment `s` (row inside `piece`), from the slot's start.
  int64_t ElementOffset(size_t s, const Piece& piece, int64_t part, int64_t row) const {
    const int64_t cols = segments[s].size();
    return SegmentOffset(s) + piece.group_base * cols +
           ((part - parts.begin) * piece.group_rows + piece.index + (row - piece.rows.begin)) *
               cols;
  }
  // True when the slot is simply [parts, rows, cols] (one segment, one group covering the unit's
  // rows in order): the unit can be converted straight into it.
  bool IsPlainMatrix() const {
    return segments.size() == 1 && pieces.size() == 1 && pieces[0].rows == rows &&
           pieces[0].group_base == 0 && pieces[0].index == 0;
  }
};

// The slot geometries of a unit of `tensor`: weights, and FP8 scales in 128-blocks.
SlotGeometry WeightSlot(const PlannedTensor& tensor, const ConvertUnit& unit);
SlotGeometry ScaleSlot(const PlannedTensor& tensor, const ConvertUnit& unit);

}  // namespace weightsync
