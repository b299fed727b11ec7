// What one destination tensor is made of, and how its values are produced.
//
// A ConversionSpec is concrete (no name patterns): "model.layers.3.self_attn.fused_qkv_a_proj.weight
// is rows [q_a_proj; kv_a_proj_with_mqa] quantized to FP8 128x128 blocks with scale
// ...weight_scale_inv". Model spec files (src/model) produce these from a checkpoint's names; the
// push engine will replay them every step. The value semantics are in docs/conversion.md.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "convert/block_quantize.h"
#include "weightsync/tensor.h"

namespace weightsync {

struct QuantizationSpec {
  DType destination_dtype = DType::kBF16;
  // Empty: a plain cast/copy. Otherwise FP8 block quantization; the scale tensor is named
  // destination + scale_suffix ("w13_weight" -> "w13_weight_scale_inv").
  std::string scale_suffix;
  int64_t block_size = kFp8BlockSize;

  bool quantized() const { return !scale_suffix.empty(); }
};

// One source piece: a tensor, optionally one entry of dimension 0 (an expert of a [E, rows, cols]
// stack), optionally one of `chunks` equal row chunks of that (gate = chunk 0 of 2 of gate_up_proj).
struct SourceRef {
  std::string tensor;
  int64_t index = -1;  // -1: the whole tensor
  int64_t chunk = 0;
  int64_t chunks = 1;

  std::string ToString() const;  // "model.layers.3.mlp.experts.gate_up_proj[5] rows 1/2"
};

struct ConversionSpec {
  std::string destination;
  // parts[e] are the pieces of expert e concatenated along cat_dim. A destination that is not
  // stacked has exactly one part and keeps the rank of its (single or concatenated) sources.
  std::vector<std::vector<SourceRef>> parts;
  bool stacked = false;  // destination is [E, rows, cols], one part per expert
  int cat_dim = 0;
  QuantizationSpec quantization;

  std::string scale_name() const { return destination + quantization.scale_suffix; }
};

// Finds a source tensor by name (a checkpoint, a trainer's live tensors).
using SourceLookup = std::function<Result<TensorView>(const std::string& name)>;

// One 2D piece of work: source rows x cols into the destination at (row, col) of part `part`.
struct ConversionPiece {
  TensorView source;  // 2D view (1D sources are viewed as one row)
  std::string source_name;  // SourceRef::ToString(), for messages
  std::string tensor;       // the named source tensor
  std::string context;      // "expert 5" for a piece of a 3D stack
  int64_t part = 0;
  int64_t dst_row = 0;
  int64_t dst_col = 0;
  int64_t src_row_origin = 0;  // first row of `source` within the named tensor, for error messages
};

// A ConversionSpec checked against real source tensors: shapes agree, dtypes are supported, fused
// boundaries are 128-aligned for FP8; ready to execute into destination memory.
struct ResolvedConversion {
  ConversionSpec spec;
  Shape shape;        // destination shape
  Shape scale_shape;  // empty unless quantized
  int64_t rows = 0;   // per part, as a 2D matrix
  int64_t cols = 0;
  std::vector<ConversionPiece> pieces;
  int64_t source_bytes = 0;

  int64_t destination_bytes() const;
  int64_t scale_bytes() const;
};

Result<ResolvedConversion> ResolveConversion(const ConversionSpec& spec,
                                             const SourceLookup& lookup);

// The ConvertJobs that execute `resolved` into contiguous destination (and FP8 scale) memory at
// these addresses, which may be device pointers (the jobs only carry them). The jobs' strings
// point into `resolved`.
std::vector<ConvertJob> ConversionJobs(const ResolvedConversion& resolved, void* destination,
                                       float* scale);

// Converts every piece into `destination` (and `scale` for FP8), both contiguous CPU tensors with
// exactly resolved.shape / resolved.scale_shape and the destination dtype / fp32. Bad values (NaN,
// Inf) fail with an error naming the source tensor and coordinate; the destination is then partly
// written, so callers convert into staging memory or temporary files.
Status ExecuteConversion(const ResolvedConversion& resolved, const TensorView& destination,
                         const TensorView& scale, int threads);

}  // namespace weightsync
