// Destination tensors of a plan: what each is made of, and how every inference rank holds it.
#include <algorithm>
#include <map>

#include "convert/block_quantize.h"
#include "model/conversion_plan.h"
#include "plan/plan_internal.h"

namespace weightsync::plan_internal {
namespace {

// One source piece of a part as a 2D matrix (1D tensors are [n, 1]).
Result<SourcePiece> ResolvePiece(const SourceRef& ref,
                                 const std::map<std::string, const SourceTensor*>& sources,
                                 const TrainerParallelism& trainer,
                                 const std::string& destination) {
  auto it = sources.find(ref.tensor);
  if (it == sources.end()) {
    return Internal("destination ", destination, ": source ", ref.tensor, " is not in the model");
  }
  const SourceTensor& source = *it->second;
  SourcePiece piece;
  piece.tensor = source.name;
  piece.index = ref.index;
  piece.element_bytes = static_cast<int64_t>(DTypeSize(source.dtype));
  Shape shape = source.shape;
  if (ref.index >= 0) {
    if (shape.size() != 3 || ref.index >= shape[0]) {
      return InvalidArgument("destination ", destination, ": source ", ref.ToString(),
                             " is not an expert of a [E, rows, cols] stack ", ShapeToString(shape));
    }
    WS_RETURN_IF_ERROR(trainer.CheckExpertStack(source.name, shape[0]));
    piece.stack_experts = shape[0];
    shape.erase(shape.begin());
  } else {
    piece.tensor_rows = shape.empty() ? 0 : shape[0];
  }
  if (shape.size() == 1) shape.push_back(1);
  if (shape.size() != 2 || shape[0] % ref.chunks != 0) {
    return InvalidArgument("destination ", destination, ": source ", ref.ToString(), " has shape ",
                           ShapeToString(source.shape),
                           ", not a 1D/2D tensor (or an expert of a "
                           "stack) of rows divisible into ",
                           ref.chunks, " chunks");
  }
  const int64_t rows = shape[0] / ref.chunks;
  piece.source_row = ref.chunk * rows;
  piece.rows = {0, rows};
  piece.cols = shape[1];
  return piece;
}

// Lays the pieces of one part along cat_dim; returns the part's [rows, cols].
Result<std::pair<int64_t, int64_t>> PlacePieces(std::vector<SourcePiece>& pieces, int cat_dim,
                                                bool fp8, const std::string& destination) {
  int64_t rows = 0, cols = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    SourcePiece& piece = pieces[i];
    const int64_t piece_rows = piece.rows.size();
    if (cat_dim == 0) {
      if (i > 0 && piece.cols != cols) {
        return InvalidArgument("destination ", destination, ": source ", piece.tensor, " has ",
                               piece.cols, " columns, earlier sources ", cols);
      }
      if (fp8 && i > 0 && rows % kFp8BlockSize != 0) {
        return InvalidArgument("destination ", destination, ": source ", piece.tensor,
                               " starts at row ", rows, ", not on a 128-row block");
      }
      cols = piece.cols;
      piece.rows = {rows, rows + piece_rows};
      rows += piece_rows;
    } else {
      if (i > 0 && piece_rows != rows) {
        return InvalidArgument("destination ", destination, ": source ", piece.tensor, " has ",
                               piece_rows, " rows, earlier sources ", rows);
      }
      if (fp8 && i > 0 && cols % kFp8BlockSize != 0) {
        return InvalidArgument("destination ", destination, ": source ", piece.tensor,
                               " starts at column ", cols, ", not on a 128-column block");
      }
      rows = piece_rows;
      cols += piece.cols;
    }
  }
  return std::pair{rows, cols};
}

// Rows [0, rows) cut at every layout boundary; each piece goes to the group of the lowest rank
// holding it (pieces no rank holds form a last group), groups in rank order, rows ascending.
std::vector<std::vector<Range>> RowGroups(const std::vector<LocalLayout>& layouts, int64_t rows) {
  std::vector<int64_t> bounds = {0, rows};
  for (const LocalLayout& layout : layouts) {
    if (layout.empty()) continue;
    for (const Range& r : layout.rows) {
      bounds.push_back(std::min(r.begin, rows));
      bounds.push_back(std::min(r.end, rows));
    }
  }
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::map<size_t, std::vector<Range>> groups;  // lowest holding rank (or layouts.size()) -> rows
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const Range piece{bounds[i], bounds[i + 1]};
    size_t holder = layouts.size();
    for (size_t rank = 0; rank < layouts.size() && holder == layouts.size(); ++rank) {
      if (layouts[rank].empty()) continue;
      for (const Range& r : layouts[rank].rows) {
        if (r.begin <= piece.begin && piece.end <= r.end) holder = rank;
      }
    }
    std::vector<Range>& group = groups[holder];
    if (!group.empty() && group.back().end == piece.begin) {
      group.back().end = piece.end;
    } else {
      group.push_back(piece);
    }
  }
  std::vector<std::vector<Range>> out;
  for (auto& [holder, group] : groups) out.push_back(std::move(group));
  return out;
}

Result<PlannedTensor> PlanOneTensor(const ConversionSpec& spec, const TargetRule& rule,
                                    const std::map<std::string, const SourceTensor*>& sources,
                                    const ModelDims& dims, const PlanOptions& options) {
  const InferenceParallelism& inference = options.inference;
  PlannedTensor tensor;
  TensorShape2D& shape = tensor.shape;
  shape.name = spec.destination;
  shape.parallel = rule.parallel;
  shape.stacked = spec.stacked;
  shape.parts = static_cast<int64_t>(spec.parts.size());
  shape.fp8 = spec.quantization.quantized();
  tensor.dtype = spec.quantization.destination_dtype;
  tensor.cat_dim = spec.cat_dim;
  if (shape.fp8) tensor.scale_name = spec.scale_name();
  if (spec.cat_dim != 0 && spec.cat_dim != 1) {
    return InvalidArgument("destination ", spec.destination, ": cat_dim ", spec.cat_dim,
                           " unsupported");
  }
  for (size_t p = 0; p < spec.parts.size(); ++p) {
    std::vector<SourcePiece> pieces;
    for (const SourceRef& ref : spec.parts[p]) {
      WS_ASSIGN_OR_RETURN(SourcePiece piece,
                          ResolvePiece(ref, sources, options.trainer, spec.destination));
      pieces.push_back(std::move(piece));
    }
    WS_ASSIGN_OR_RETURN(auto extent,
                        PlacePieces(pieces, spec.cat_dim, shape.fp8, spec.destination));
    if (p == 0) {
      shape.rows = extent.first;
      shape.cols = extent.second;
      if (spec.cat_dim == 0) {
        for (const SourcePiece& piece : pieces) shape.source_rows.push_back(piece.rows.size());
      }
    } else if (extent != std::pair{shape.rows, shape.cols}) {
      return InvalidArgument("destination ", spec.destination, ": expert ", p, " is [",
                             extent.first, ", ", extent.second, "], expert 0 is [", shape.rows,
                             ", ", shape.cols, "]");
    }
    tensor.pieces.push_back(std::move(pieces));
  }
  // Column segments of a slot: every distinct column split any rank uses.
  std::vector<int64_t> bounds = {0, shape.cols};
  for (int rank = 0; rank < inference.ranks(); ++rank) {
    WS_ASSIGN_OR_RETURN(LocalLayout layout, DestinationLayout(shape, dims, inference, rank));
    if (!layout.empty()) {
      bounds.push_back(layout.cols.begin);
      bounds.push_back(layout.cols.end);
    }
    tensor.layouts.push_back(std::move(layout));
  }
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    tensor.segments.push_back({bounds[i], bounds[i + 1]});
  tensor.row_groups = RowGroups(tensor.layouts, shape.rows);
  if (shape.fp8) {
    for (const auto& group : tensor.row_groups) {
      std::vector<Range> blocks;
      for (const Range& r : group) {
        blocks.push_back({r.begin / kFp8BlockSize, (r.end + kFp8BlockSize - 1) / kFp8BlockSize});
      }
      tensor.scale_row_groups.push_back(std::move(blocks));
    }
  }
  return tensor;
}

}  // namespace

Result<std::vector<PlannedTensor>> PlanTensors(const ModelSpec& model, const ModelDims& dims,
                                               const PlanOptions& options) {
  WS_ASSIGN_OR_RETURN(std::vector<SourceTensor> canonical, CanonicalTensors(dims));
  WS_ASSIGN_OR_RETURN(const SourceFormat* source_format,
                      model.FindSourceFormat(options.source_format));
  WS_ASSIGN_OR_RETURN(const TargetFormat* target_format,
                      model.FindTargetFormat(options.target_format));
  WS_ASSIGN_OR_RETURN(std::vector<SourceTensor> source, TensorsInFormat(canonical, *source_format));
  std::vector<SourceTensorInfo> infos;
  std::map<std::string, const SourceTensor*> by_name;
  for (const SourceTensor& tensor : source) {
    infos.push_back({tensor.name, tensor.shape});
    by_name[tensor.name] = &tensor;
  }
  ConversionPlanOptions conversion_options;
  conversion_options.source_format = options.source_format;
  conversion_options.target_format = options.target_format;
  WS_ASSIGN_OR_RETURN(ConversionPlan conversion, PlanConversion(model, infos, conversion_options));
  std::vector<PlannedTensor> out;
  for (size_t i = 0; i < conversion.specs.size(); ++i) {
    const TargetRule& rule = target_format->tensors[conversion.rules[i]];
    WS_ASSIGN_OR_RETURN(PlannedTensor tensor,
                        PlanOneTensor(conversion.specs[i], rule, by_name, dims, options));
    out.push_back(std::move(tensor));
  }
  return out;
}

}  // namespace weightsync::plan_internal
