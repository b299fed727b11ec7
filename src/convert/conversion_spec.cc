#include "convert/conversion_spec.h"

namespace weightsync {
namespace {

bool IsSupportedSource(DType dtype) {
  return dtype == DType::kBF16 || dtype == DType::kF16 || dtype == DType::kF32;
}

Status CheckQuantization(const ConversionSpec& spec) {
  const QuantizationSpec& q = spec.quantization;
  DType dst = q.destination_dtype;
  if (q.quantized()) {
    if (dst != DType::kF8E4M3) {
      return InvalidArgument("destination ", spec.destination, ": scale suffix '", q.scale_suffix,
                             "' needs dtype float8_e4m3fn, not ", DTypeTorchName(dst));
    }
    if (q.block_size != kFp8BlockSize) {
      return InvalidArgument("destination ", spec.destination, ": block size ", q.block_size,
                             " unsupported (only ", kFp8BlockSize, ")");
    }
  } else if (dst != DType::kBF16 && dst != DType::kF32) {
    return InvalidArgument("destination ", spec.destination, ": dtype ", DTypeTorchName(dst),
                           dst == DType::kF8E4M3 ? " needs a scale suffix"
                                                 : " unsupported (bfloat16, float32, float8_e4m3fn)");
  }
  if (spec.parts.empty()) return InvalidArgument("destination ", spec.destination, " has no sources");
  if (!spec.stacked && spec.parts.size() != 1) {
    return Internal("destination ", spec.destination, " is not stacked but has ", spec.parts.size(),
                    " parts");
  }
  if (spec.cat_dim != 0 && spec.cat_dim != 1) {
    return InvalidArgument("destination ", spec.destination, ": cat_dim ", spec.cat_dim,
                           " unsupported (0 or 1)");
  }
  return Status::Ok();
}

// The source piece as a 2D view, after selecting its expert and row chunk.
Result<ConversionPiece> ResolvePiece(const ConversionSpec& spec, const SourceRef& ref,
                                     const SourceLookup& lookup, bool* was_1d) {
  auto context = StrCat("destination ", spec.destination, ", source ", ref.ToString());
  Result<TensorView> found = lookup(ref.tensor);
  if (!found.ok()) return found.status().WithContext(context);
  TensorView view = *found;
  if (!IsSupportedSource(view.dtype)) {
    return InvalidArgument(context, ": source dtype ", DTypeTorchName(view.dtype),
                           " unsupported (bfloat16, float16, float32)");
  }
  if (ref.index >= 0) {
    if (view.dim() != 3) {
      return InvalidArgument(context, ": expected a 3D stack to select from, got ",
                             ShapeToString(view.shape));
    }
    WS_ASSIGN_OR_RETURN(view, view.Select(ref.index));
  }
  ConversionPiece piece;
  piece.source_name = ref.ToString();
  piece.tensor = ref.tensor;
  if (ref.index >= 0) piece.context = StrCat("expert ", ref.index);
  if (ref.chunks > 1) {
    if (view.dim() != 2 || view.shape[0] % ref.chunks != 0) {
      return InvalidArgument(context, ": cannot split ", ShapeToString(view.shape), " into ",
                             ref.chunks, " equal row chunks");
    }
    int64_t rows = view.shape[0] / ref.chunks;
    piece.src_row_origin = ref.chunk * rows;
    WS_ASSIGN_OR_RETURN(view, view.Narrow(piece.src_row_origin, rows));
  }
  *was_1d = view.dim() == 1;
  if (view.dim() == 1) {
    view.shape = {1, view.shape[0]};
    view.strides = {view.shape[1], 1};
    if (spec.stacked || spec.parts[0].size() != 1 || spec.quantization.quantized()) {
      return InvalidArgument(context, ": a 1D source can only be cast on its own");
    }
  }
  if (view.dim() != 2) {
    return InvalidArgument(context, ": expected a 1D or 2D tensor (after selecting), got ",
                           ShapeToString(view.shape));
  }
  if (view.stride(1) != 1 || view.stride(0) < view.shape[1]) {
    return InvalidArgument(context, ": rows must be contiguous (strides ",
                           ShapeToString(view.strides), ")");
  }
  piece.source = view;
  return piece;
}

}  // namespace

std::string SourceRef::ToString() const {
  std::string out = tensor;
  if (index >= 0) out += StrCat("[", index, "]");
  if (chunks > 1) out += StrCat(" rows ", chunk + 1, "/", chunks);
  return out;
}

int64_t ResolvedConversion::destination_bytes() const {
  return NumElements(shape) * static_cast<int64_t>(DTypeSize(spec.quantization.destination_dtype));
}

int64_t ResolvedConversion::scale_bytes() const {
  return scale_shape.empty() ? 0 : NumElements(scale_shape) * 4;
}

Result<ResolvedConversion> ResolveConversion(const ConversionSpec& spec,
                                             const SourceLookup& lookup) {
  WS_RETURN_IF_ERROR(CheckQuantization(spec));
  ResolvedConversion out;
  out.spec = spec;
  const bool fp8 = spec.quantization.quantized();
  const int cat = spec.cat_dim;
  bool original_1d = false;
  for (size_t part = 0; part < spec.parts.size(); ++part) {
    int64_t extent[2] = {0, 0};  // rows, cols of this part
    const auto& refs = spec.parts[part];
    for (size_t i = 0; i < refs.size(); ++i) {
      WS_ASSIGN_OR_RETURN(ConversionPiece piece, ResolvePiece(spec, refs[i], lookup, &original_1d));
      const int64_t piece_extent[2] = {piece.source.shape[0], piece.source.shape[1]};
      const int other = 1 - cat;
      if (i == 0) {
        extent[other] = piece_extent[other];
      } else if (piece_extent[other] != extent[other]) {
        return InvalidArgument("destination ", spec.destination, ": source ", piece.source_name,
                               " has ", ShapeToString(piece.source.shape), ", but earlier sources"
                               " have ", extent[other], cat == 0 ? " columns" : " rows");
      }
      if (fp8 && extent[cat] % kFp8BlockSize != 0) {
        return InvalidArgument("destination ", spec.destination, ": source ", piece.source_name,
                               " starts at ", cat == 0 ? "row " : "column ", extent[cat],
                               ", not a multiple of ", kFp8BlockSize,
                               ": fused FP8 sources must end on 128-block boundaries");
      }
      piece.part = static_cast<int64_t>(part);
      (cat == 0 ? piece.dst_row : piece.dst_col) = extent[cat];
      extent[cat] += piece_extent[cat];
      out.source_bytes += piece.source.nbytes();
      out.pieces.push_back(std::move(piece));
    }
    if (part == 0) {
      out.rows = extent[0];
      out.cols = extent[1];
    } else if (extent[0] != out.rows || extent[1] != out.cols) {
      return InvalidArgument("destination ", spec.destination, ": expert ", part, " is [",
                             extent[0], ", ", extent[1], "] but expert 0 is [", out.rows, ", ",
                             out.cols, "]");
    }
  }
  if (spec.stacked) {
    out.shape = {static_cast<int64_t>(spec.parts.size()), out.rows, out.cols};
  } else {
    out.shape = original_1d ? Shape{out.cols} : Shape{out.rows, out.cols};
  }
  if (fp8) {
    Shape blocks = {CeilDiv(out.rows, kFp8BlockSize), CeilDiv(out.cols, kFp8BlockSize)};
    if (out.shape.size() == 1) {
      return InvalidArgument("destination ", spec.destination, ": FP8 needs a 2D or 3D tensor");
    }
    out.scale_shape = spec.stacked ? Shape{out.shape[0], blocks[0], blocks[1]} : blocks;
  }
  return out;
}

std::vector<ConvertJob> ConversionJobs(const ResolvedConversion& resolved, void* destination,
                                       float* scale) {
  const DType dst_dtype = resolved.spec.quantization.destination_dtype;
  const int64_t dst_size = static_cast<int64_t>(DTypeSize(dst_dtype));
  const int64_t block_rows = CeilDiv(resolved.rows, kFp8BlockSize);
  const int64_t block_cols = CeilDiv(resolved.cols, kFp8BlockSize);
  std::vector<ConvertJob> jobs;
  for (const ConversionPiece& piece : resolved.pieces) {
    const TensorView& src = piece.source;
    ConvertJob job;
    job.src = src.data;
    job.src_dtype = src.dtype;
    job.rows = src.shape[0];
    job.cols = src.shape[1];
    job.src_row_stride = src.stride(0);
    const int64_t dst_offset =
        (piece.part * resolved.rows + piece.dst_row) * resolved.cols + piece.dst_col;
    job.dst = static_cast<char*>(destination) + dst_offset * dst_size;
    job.dst_dtype = dst_dtype;
    job.dst_row_stride = resolved.cols;
    if (resolved.spec.quantization.quantized()) {
      job.scales = scale + piece.part * block_rows * block_cols +
                   (piece.dst_row / kFp8BlockSize) * block_cols + piece.dst_col / kFp8BlockSize;
      job.scale_row_stride = block_cols;
    }
    job.name = piece.tensor;
    job.context = piece.context;
    job.row_origin = piece.src_row_origin;
    jobs.push_back(job);
  }
  return jobs;
}

Status ExecuteConversion(const ResolvedConversion& resolved, const TensorView& destination,
                         const TensorView& scale, int threads) {
  const auto& spec = resolved.spec;
  const DType dst_dtype = spec.quantization.destination_dtype;
  const bool fp8 = spec.quantization.quantized();
  if (destination.shape != resolved.shape || destination.dtype != dst_dtype ||
      !destination.is_contiguous() || destination.device.kind != DeviceKind::kCpu) {
    return InvalidArgument("destination ", spec.destination, ": expected contiguous ",
                           DTypeTorchName(dst_dtype), ShapeToString(resolved.shape),
                           " on the CPU, got ", destination.ToString());
  }
  if (fp8 && (scale.shape != resolved.scale_shape || scale.dtype != DType::kF32 ||
              !scale.is_contiguous() || scale.device.kind != DeviceKind::kCpu)) {
    return InvalidArgument("scale ", spec.scale_name(), ": expected contiguous float32",
                           ShapeToString(resolved.scale_shape), " on the CPU, got ",
                           scale.ToString());
  }
  for (const ConversionPiece& piece : resolved.pieces) {
    if (piece.source.device.kind != DeviceKind::kCpu) {
      return InvalidArgument("destination ", spec.destination, ", source ", piece.source_name,
                             " is on ", piece.source.device.ToString(),
                             ": ExecuteConversion converts on the CPU (CudaConverter on a GPU)");
    }
  }
  // Small pieces are not worth starting threads for.
  constexpr int64_t kMinBytesPerThread = 1 << 20;
  for (const ConvertJob& job : ConversionJobs(resolved, destination.data, scale.data_as<float>())) {
    const int64_t bytes = job.rows * job.cols * static_cast<int64_t>(DTypeSize(job.src_dtype));
    WS_RETURN_IF_ERROR(ConvertFast(job, bytes < kMinBytesPerThread ? 1 : threads)
                           .WithContext(StrCat("destination ", spec.destination)));
  }
  return Status::Ok();
}

}  // namespace weightsync
