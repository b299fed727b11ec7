#include "agent/unit_converter.h"

#include <cstring>

#include "plan/slot_geometry.h"

namespace weightsync::agent {
namespace {

bool IsPlain(const PlannedTensor& tensor, const ConvertUnit& unit) {
  return WeightSlot(tensor, unit).IsPlainMatrix() &&
         (!tensor.shape.fp8 || ScaleSlot(tensor, unit).IsPlainMatrix());
}

struct DenseSizes {
  int64_t weight;  // one part's [rows, cols] in the destination dtype
  int64_t scale;   // one part's [block rows, scale cols] fp32
};

DenseSizes DenseOf(const PlannedTensor& tensor, const ConvertUnit& unit) {
  const int64_t rows = unit.rows.size();
  const int64_t scale_cols = tensor.shape.fp8 ? tensor.scale_cols() : 0;
  return {rows * tensor.shape.cols * tensor.element_bytes(),
          CeilDiv(rows, kFp8BlockSize) * scale_cols * 4};
}

// The copies that move one part, converted as a dense [rows, cols] matrix at `dense`, into the
// slot layout of `geometry` (element size `element`).
void AddScatter(const SlotGeometry& geometry, int64_t part, const char* dense, int64_t cols,
                int64_t element, char* slot, std::vector<StridedCopy>& out) {
  for (size_t s = 0; s < geometry.segments.size(); ++s) {
    const Range segment = geometry.segments[s];
    for (const SlotGeometry::Piece& piece : geometry.pieces) {
      out.push_back({slot + geometry.ElementOffset(s, piece, part, piece.rows.begin) * element,
                     static_cast<size_t>(segment.size() * element),
                     dense + ((piece.rows.begin - geometry.rows.begin) * cols + segment.begin) *
                                 element,
                     static_cast<size_t>(cols * element),
                     static_cast<size_t>(segment.size() * element),
                     static_cast<size_t>(piece.rows.size())});
    }
  }
}

}  // namespace

int64_t UnitScratchBytes(const PlannedTensor& tensor, const ConvertUnit& unit) {
  if (IsPlain(tensor, unit)) return 0;
  const DenseSizes dense = DenseOf(tensor, unit);
  return unit.parts.size() * (dense.weight + dense.scale);
}

Result<UnitWork> PlanUnitWork(const PlannedTensor& tensor, const ConvertUnit& unit,
                              const PieceSource& source, const SlotTarget& slot, void* scratch) {
  const bool fp8 = tensor.shape.fp8;
  const int64_t element = tensor.element_bytes();
  const int64_t cols = tensor.shape.cols;
  const int64_t scale_cols = fp8 ? tensor.scale_cols() : 0;
  const bool plain = IsPlain(tensor, unit);
  const DenseSizes dense = DenseOf(tensor, unit);
  // Plain: part i's dense matrix is the slot's i-th [rows, cols] (and scales likewise).
  // Otherwise scratch holds every part's weights, then every part's scales.
  char* weight_base = plain ? static_cast<char*>(slot.weight) : static_cast<char*>(scratch);
  char* scale_base = plain ? reinterpret_cast<char*>(slot.scale)
                           : static_cast<char*>(scratch) + unit.parts.size() * dense.weight;
  UnitWork work;
  for (int64_t part = unit.parts.begin; part < unit.parts.end; ++part) {
    const int64_t index = part - unit.parts.begin;
    char* weights = weight_base + index * dense.weight;
    float* scales = fp8 ? reinterpret_cast<float*>(scale_base + index * dense.scale) : nullptr;
    int64_t col_offset = 0;  // of the piece, when pieces are concatenated along columns
    const auto& pieces = tensor.pieces[part];
    for (int32_t i = 0; i < static_cast<int32_t>(pieces.size()); ++i) {
      const SourcePiece& piece = pieces[i];
      const int64_t a = std::max(piece.rows.begin, unit.rows.begin);
      const int64_t b = std::min(piece.rows.end, unit.rows.end);
      if (a < b) {
        const Range source_rows{piece.source_row + (a - piece.rows.begin),
                                piece.source_row + (b - piece.rows.begin)};
        WS_ASSIGN_OR_RETURN(TensorView view, source(part, i, source_rows));
        if (view.dim() != 2 || view.shape[0] != b - a || view.shape[1] != piece.cols) {
          return Internal("source ", piece.tensor, " rows [", source_rows.begin, ", ",
                          source_rows.end, ") came as ", view.ToString(), ", expected [",
                          b - a, ", ", piece.cols, "]");
        }
        ConvertJob job;
        job.src = view.data;
        job.src_dtype = view.dtype;
        job.rows = b - a;
        job.cols = piece.cols;
        job.src_row_stride = view.stride(0);
        job.dst = weights + ((a - unit.rows.begin) * cols + col_offset) * element;
        job.dst_dtype = tensor.dtype;
        job.dst_row_stride = cols;
        if (fp8) {
          job.scales = scales + (a - unit.rows.begin) / kFp8BlockSize * scale_cols +
                       col_offset / kFp8BlockSize;
          job.scale_row_stride = scale_cols;
        }
        job.name = piece.tensor;
        if (piece.index >= 0) job.context = work.contexts.emplace_back(StrCat("expert ", piece.index));
        job.row_origin = source_rows.begin;
        work.jobs.push_back(job);
      }
      if (tensor.cat_dim == 1) col_offset += piece.cols;
    }
    if (!plain) {
      AddScatter(WeightSlot(tensor, unit), part, weights, cols, element,
                 static_cast<char*>(slot.weight), work.copies);
      if (fp8) {
        AddScatter(ScaleSlot(tensor, unit), part, reinterpret_cast<const char*>(scales),
                   scale_cols, 4, reinterpret_cast<char*>(slot.scale), work.copies);
      }
    }
  }
  return work;
}

Status RunOnCpu(const UnitWork& work, int threads) {
  constexpr int64_t kMinBytesPerThread = 1 << 20;  // smaller pieces are not worth threads
  for (const ConvertJob& job : work.jobs) {
    const int64_t bytes = job.rows * job.cols * static_cast<int64_t>(DTypeSize(job.src_dtype));
    WS_RETURN_IF_ERROR(ConvertFast(job, bytes < kMinBytesPerThread ? 1 : threads));
  }
  for (const StridedCopy& c : work.copies) {
    for (size_t row = 0; row < c.height; ++row) {
      std::memcpy(static_cast<char*>(c.dst) + row * c.dst_pitch,
                  static_cast<const char*>(c.src) + row * c.src_pitch, c.width);
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::agent
