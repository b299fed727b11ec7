// Converts one convert unit of the plan into its staging slot, on the CPU: the destination rows
// of the unit's parts, from their source pieces, into the slot layout the planner's writes read
// (plan/slot_geometry.h): FP8 weights and scales, or bf16/fp32 casts, bit-exact with
// ConvertReference.
//
// When the slot is a plain [parts, rows, cols] matrix (most units: experts, replicated and
// row-split tensors) the unit converts straight into it; otherwise each part is converted into
// scratch memory and its rows copied to their segments and groups.
//
// Threading: ConvertIntoSlot may run on any thread; `scratch` is the caller's, one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "plan/transfer_plan.h"
#include "weightsync/tensor.h"

namespace weightsync::agent {

// A 2D view [rows, piece.cols] of source rows `rows` of piece `piece` of part `part` of the
// unit's tensor (rows of the expert when the piece is an expert of a stack).
using PieceSource =
    std::function<Result<TensorView>(int64_t part, int32_t piece, Range rows)>;

struct SlotTarget {
  void* weight = nullptr;  // the unit's weight slot
  float* scale = nullptr;  // its FP8 scale slot (FP8 tensors only)
};

// Errors (NaN/Inf, bad views) name the source tensor and coordinates; the slot is then partly
// written, which is harmless: slots are staging memory.
Status ConvertIntoSlot(const PlannedTensor& tensor, const ConvertUnit& unit,
                       const PieceSource& source, const SlotTarget& slot,
                       std::vector<uint8_t>& scratch, int threads);

}  // namespace weightsync::agent
