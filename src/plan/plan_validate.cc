// ValidatePlan: exact-once coverage of every destination byte, bounds of every write and slot.
#include <algorithm>

#include "convert/block_quantize.h"
#include "plan/plan_internal.h"

namespace weightsync {
namespace {

using plan_internal::CeilDiv;

// Byte ranges of a rank's tensor that hold real rows (not vocab padding), merged, in order.
std::vector<Range> RealBytes(const PlannedTensor& tensor, const LocalLayout& weight, bool scale) {
  const LocalLayout layout =
      scale ? ScaleLayout(weight, tensor.shape.rows, tensor.shape.cols) : weight;
  const int64_t full_rows = scale ? CeilDiv(tensor.shape.rows, kFp8BlockSize) : tensor.shape.rows;
  const int64_t row_bytes = layout.cols.size() * (scale ? 4 : tensor.element_bytes());
  const int64_t local_rows = layout.local_rows();
  std::vector<Range> out;
  for (size_t p = 0; p < layout.parts.size(); ++p) {
    int64_t local_row = static_cast<int64_t>(p) * local_rows;
    for (const Range& r : layout.rows) {
      const int64_t real = std::max<int64_t>(0, std::min(r.end, full_rows) - r.begin);
      const Range bytes{local_row * row_bytes, (local_row + real) * row_bytes};
      if (bytes.size() > 0) {
        if (!out.empty() && out.back().end == bytes.begin) {
          out.back().end = bytes.end;
        } else {
          out.push_back(bytes);
        }
      }
      local_row += r.size();
    }
  }
  return out;
}

struct Hit {
  int64_t region = 0;
  Range bytes;
  int32_t owner = 0;
};

}  // namespace

Status ValidatePlan(const TransferPlan& plan) {
  const InferenceParallelism& inference = plan.options.inference;
  const int64_t ranks = inference.ranks();
  const int64_t tensors = static_cast<int64_t>(plan.tensors.size());
  const int senders = plan.options.trainer.senders();
  auto region_of = [&](int64_t replica, int64_t rank, int64_t tensor, bool scale) {
    return ((replica * ranks + rank) * tensors + tensor) * 2 + (scale ? 1 : 0);
  };
  auto describe = [&](int64_t region) {
    const bool scale = region % 2;
    const int64_t tensor = region / 2 % tensors;
    const int64_t rank = region / 2 / tensors % ranks;
    const int64_t replica = region / 2 / tensors / ranks;
    const PlannedTensor& t = plan.tensors[tensor];
    return StrCat("tensor ", scale ? t.scale_name : t.shape.name, " on inference replica ", replica,
                  " rank ", rank);
  };

  std::vector<Hit> hits;
  hits.reserve(plan.writes.size());
  for (int32_t u = 0; u < static_cast<int32_t>(plan.units.size()); ++u) {
    const ConvertUnit& unit = plan.units[u];
    const PlannedTensor& tensor = plan.tensors[unit.tensor];
    const std::string where =
        StrCat("unit ", u, " (tensor ", tensor.shape.name, ", trainer rank ", unit.owner, ")");
    if (unit.owner < 0 || unit.owner >= senders) {
      return FailedPrecondition(where, ": owner is not a sending trainer rank (0..", senders - 1,
                                ")");
    }
    if (unit.staging_offset < 0 ||
        unit.staging_offset + unit.staging_bytes > plan.options.staging_budget) {
      return OutOfRange(where, ": staging [", unit.staging_offset, ", ",
                        unit.staging_offset + unit.staging_bytes, ") exceeds the budget ",
                        plan.options.staging_budget);
    }
    for (int64_t w = unit.first_write; w < unit.first_write + unit.write_count; ++w) {
      const PlannedWrite& write = plan.writes[w];
      const int64_t slot = write.scale ? unit.scale_bytes : unit.weight_bytes;
      if (write.unit != u || write.bytes <= 0 || write.slot_offset < 0 ||
          write.slot_offset + write.bytes > slot || write.replica < 0 ||
          write.replica >= inference.replicas || write.rank < 0 || write.rank >= ranks) {
        return OutOfRange(where, ": write ", w, " (slot [", write.slot_offset, ", ",
                          write.slot_offset + write.bytes, ") of ", slot, " bytes, replica ",
                          write.replica, " rank ", write.rank, ") is out of bounds");
      }
      hits.push_back({region_of(write.replica, write.rank, unit.tensor, write.scale),
                      {write.dest_offset, write.dest_offset + write.bytes},
                      unit.owner});
    }
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.region != b.region ? a.region < b.region : a.bytes.begin < b.bytes.begin;
  });

  size_t next = 0;
  for (int64_t replica = 0; replica < inference.replicas; ++replica) {
    for (int64_t rank = 0; rank < ranks; ++rank) {
      for (int64_t t = 0; t < tensors; ++t) {
        const PlannedTensor& tensor = plan.tensors[t];
        for (bool scale : {false, true}) {
          if (scale && !tensor.shape.fp8) continue;
          const int64_t region = region_of(replica, rank, t, scale);
          if (next < hits.size() && hits[next].region < region) {
            return Internal(describe(hits[next].region), ": written by trainer rank ",
                            hits[next].owner, " but not a destination of this plan");
          }
          const LocalLayout& layout = tensor.layouts[rank];
          const int64_t size = RegionBytes(tensor, layout, scale);
          std::vector<Range> covered;
          int32_t last_owner = -1;
          for (; next < hits.size() && hits[next].region == region; ++next) {
            const Hit& hit = hits[next];
            if (hit.bytes.begin < 0 || hit.bytes.end > size) {
              return OutOfRange(describe(region), ": write of bytes [", hit.bytes.begin, ", ",
                                hit.bytes.end, ") by trainer rank ", hit.owner,
                                " leaves the tensor's ", size, " bytes");
            }
            if (!covered.empty() && hit.bytes.begin < covered.back().end) {
              return FailedPrecondition(describe(region), ": bytes [", hit.bytes.begin, ", ",
                                        std::min(hit.bytes.end, covered.back().end),
                                        ") are written twice, by trainer ranks ", last_owner,
                                        " and ", hit.owner);
            }
            if (!covered.empty() && hit.bytes.begin == covered.back().end) {
              covered.back().end = hit.bytes.end;
            } else {
              covered.push_back(hit.bytes);
            }
            last_owner = hit.owner;
          }
          const std::vector<Range> expected = RealBytes(tensor, layout, scale);
          if (covered == expected) continue;
          // Report the first byte where they differ.
          size_t i = 0;
          while (i < covered.size() && i < expected.size() && covered[i] == expected[i]) ++i;
          if (i < expected.size() &&
              (i >= covered.size() || covered[i].begin > expected[i].begin)) {
            const int64_t end =
                i < covered.size() ? std::min(covered[i].begin, expected[i].end) : expected[i].end;
            return FailedPrecondition(describe(region), ": bytes [", expected[i].begin, ", ", end,
                                      ") of ", size, " are never written");
          }
          if (i < expected.size() && covered[i].begin == expected[i].begin &&
              covered[i].end < expected[i].end) {
            return FailedPrecondition(describe(region), ": bytes [", covered[i].end, ", ",
                                      expected[i].end, ") of ", size, " are never written");
          }
          const Range& bad = covered[i];
          return FailedPrecondition(describe(region), ": bytes [", bad.begin, ", ", bad.end,
                                    ") are written but are padding (or outside the layout)");
        }
      }
    }
  }
  if (next < hits.size()) {
    return Internal(describe(hits[next].region), ": written but not a destination of this plan");
  }
  return Status::Ok();
}

}  // namespace weightsync
