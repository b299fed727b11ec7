#include "agent/unit_converter.h"

#include <cstring>

#include "convert/block_quantize.h"
#include "plan/slot_geometry.h"

namespace weightsync::agent {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Copies one part's rows, converted as a dense [rows, cols] matrix at `dense`, into the slot
// layout of `geometry` (element size `element`).
void ScatterPart(const SlotGeometry& geometry, int64_t part, const uint8_t* dense, int64_t cols,
                 int64_t element, uint8_t* slot) {
  for (size_t s = 0; s < geometry.segments.size(); ++s) {
    const Range segment = geometry.segments[s];
    for (const SlotGeometry::Piece& piece : geometry.pieces) {
      for (int64_t row = piece.rows.begin; row < piece.rows.end; ++row) {
        std::memcpy(slot + geometry.ElementOffset(s, piece, part, row) * element,
                    dense + ((row - geometry.rows.begin) * cols + segment.begin) * element,
                    segment.size() * element);
      }
    }
  }
}

}  // namespace

Status ConvertIntoSlot(const PlannedTensor& tensor, const ConvertUnit& unit,
                       const PieceSource& source, const SlotTarget& slot,
                       std::vector<uint8_t>& scratch, int threads) {
  const bool fp8 = tensor.shape.fp8;
  const int64_t element = tensor.element_bytes();
  const int64_t rows = unit.rows.size();
  const int64_t cols = tensor.shape.cols;
  const int64_t block_rows = CeilDiv(rows, kFp8BlockSize);
  const int64_t scale_cols = fp8 ? tensor.scale_cols() : 0;
  const SlotGeometry weight_geometry = WeightSlot(tensor, unit);
  const SlotGeometry scale_geometry = ScaleSlot(tensor, unit);
  const bool plain = weight_geometry.IsPlainMatrix() && (!fp8 || scale_geometry.IsPlainMatrix());
  const int64_t dense_bytes = rows * cols * element;
  const int64_t dense_scale_bytes = block_rows * scale_cols * 4;
  if (!plain && static_cast<int64_t>(scratch.size()) < dense_bytes + dense_scale_bytes) {
    scratch.resize(dense_bytes + dense_scale_bytes);
  }
  constexpr int64_t kMinBytesPerThread = 1 << 20;  // smaller pieces are not worth threads
  for (int64_t part = unit.parts.begin; part < unit.parts.end; ++part) {
    const int64_t index = part - unit.parts.begin;
    uint8_t* dense = plain ? static_cast<uint8_t*>(slot.weight) + index * dense_bytes
                           : scratch.data();
    float* scales = !fp8   ? nullptr
                    : plain ? slot.scale + index * block_rows * scale_cols
                            : reinterpret_cast<float*>(scratch.data() + dense_bytes);
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
        const std::string context =
            piece.index >= 0 ? StrCat("expert ", piece.index) : std::string();
        ConvertJob job;
        job.src = view.data;
        job.src_dtype = view.dtype;
        job.rows = b - a;
        job.cols = piece.cols;
        job.src_row_stride = view.stride(0);
        job.dst = dense + ((a - unit.rows.begin) * cols + col_offset) * element;
        job.dst_dtype = tensor.dtype;
        job.dst_row_stride = cols;
        if (fp8) {
          job.scales = scales + (a - unit.rows.begin) / kFp8BlockSize * scale_cols +
                       col_offset / kFp8BlockSize;
          job.scale_row_stride = scale_cols;
        }
        job.name = piece.tensor;
        job.context = context;
        job.row_origin = source_rows.begin;
        const int piece_threads = view.nbytes() < kMinBytesPerThread ? 1 : threads;
        WS_RETURN_IF_ERROR(
            ConvertFast(job, piece_threads).WithContext(StrCat("destination ", tensor.shape.name)));
      }
      if (tensor.cat_dim == 1) col_offset += piece.cols;
    }
    if (!plain) {
      ScatterPart(weight_geometry, part, dense, cols, element,
                  static_cast<uint8_t*>(slot.weight));
      if (fp8) {
        ScatterPart(scale_geometry, part, reinterpret_cast<const uint8_t*>(scales), scale_cols, 4,
                    reinterpret_cast<uint8_t*>(slot.scale));
      }
    }
  }
  return Status::Ok();
}

}  // namespace weightsync::agent
