// Converting one convert unit of the plan into its staging slot: the destination rows of the
// unit's parts, from their source pieces, into the slot layout the planner's writes read
// (plan/slot_geometry.h): FP8 weights and scales, or bf16/fp32 casts, bit-exact with
// ConvertReference.
//
// The work is described first (PlanUnitWork: conversion jobs and strided copies over plain
// pointers) and then run on the CPU (RunOnCpu: ConvertFast and memcpy) or on a GPU (the trainer
// agent: CudaConverter and 2D device copies), so both paths lay out the same bytes. When the slot
// is a plain [parts, rows, cols] matrix (experts, replicated and row-split tensors) the jobs
// convert straight into it; otherwise they convert into scratch memory (UnitScratchBytes) and the
// copies move each row group to its segment.
//
// Threading: pure planning; RunOnCpu may run on any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
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

// `height` rows of `width` bytes.
struct StridedCopy {
  void* dst = nullptr;
  size_t dst_pitch = 0;
  const void* src = nullptr;
  size_t src_pitch = 0;
  size_t width = 0;
  size_t height = 0;
};

struct UnitWork {
  std::vector<ConvertJob> jobs;    // first
  std::vector<StridedCopy> copies;  // then, from scratch into the slot
  std::deque<std::string> contexts;  // storage for the jobs' context strings ("expert 5")
};

// Scratch bytes PlanUnitWork needs for this unit (0 when it converts straight into the slot).
int64_t UnitScratchBytes(const PlannedTensor& tensor, const ConvertUnit& unit);

// Describes the unit's conversion. Pointers (sources, slot, scratch) are only computed with,
// never dereferenced, so they may be device pointers.
Result<UnitWork> PlanUnitWork(const PlannedTensor& tensor, const ConvertUnit& unit,
                              const PieceSource& source, const SlotTarget& slot, void* scratch);

// Runs the work on the CPU. Errors (NaN/Inf) name the source tensor and coordinates; the slot is
// then partly written, which is harmless: slots are staging memory.
Status RunOnCpu(const UnitWork& work, int threads);

}  // namespace weightsync::agent
