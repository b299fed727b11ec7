#include "plan/layout.h"

#include <algorithm>

#include "convert/block_quantize.h"

namespace weightsync {
namespace {

// vLLM pads the vocabulary of embed_tokens / lm_head to this many rows
// (DEFAULT_VOCAB_PADDING_SIZE).
constexpr int64_t kVocabPadding = 64;

std::string Where(const TensorShape2D& tensor, int rank) {
  return StrCat("tensor ", tensor.name, " (", TensorParallelismName(tensor.parallel),
                ") on inference rank ", rank);
}

// [gate_r; up_r]: each fused source split into `ways` equal pieces, piece `index` of each.
Result<std::vector<Range>> SplitEachSource(const TensorShape2D& tensor, int64_t ways, int64_t index,
                                           int rank) {
  std::vector<int64_t> sources = tensor.source_rows;
  if (sources.empty()) sources = {tensor.rows};
  std::vector<Range> out;
  int64_t offset = 0;
  for (int64_t rows : sources) {
    if (rows % ways != 0) {
      return InvalidArgument(Where(tensor, rank), ": a source of ", rows, " rows does not split ",
                             ways, " ways");
    }
    const int64_t shard = rows / ways;
    out.push_back({offset + index * shard, offset + (index + 1) * shard});
    offset += rows;
  }
  return out;
}

Result<std::vector<Range>> QkvRows(const TensorShape2D& tensor, const ModelDims& dims, int64_t tp,
                                   int64_t tp_rank, int rank) {
  if (tensor.source_rows.size() != 3 || dims.head_dim <= 0) {
    return InvalidArgument(Where(tensor, rank), ": qkv needs three sources (q, k, v) and head_dim");
  }
  const int64_t hd = dims.head_dim;
  std::vector<Range> out;
  int64_t offset = 0;
  for (size_t s = 0; s < 3; ++s) {
    const int64_t rows = tensor.source_rows[s];
    const int64_t heads = rows / hd;
    if (rows % hd != 0) {
      return InvalidArgument(Where(tensor, rank), ": source ", s, " has ", rows,
                             " rows, not a multiple of head_dim ", hd);
    }
    if (s == 0 || heads >= tp) {
      if (heads % tp != 0) {
        return InvalidArgument(Where(tensor, rank), ": ", heads,
                               " heads do not split over tp=", tp);
      }
      const int64_t shard = heads / tp * hd;
      out.push_back({offset + tp_rank * shard, offset + (tp_rank + 1) * shard});
    } else {
      // Fewer kv heads than ranks: each kv head is replicated on tp / heads consecutive ranks.
      if (tp % heads != 0) {
        return InvalidArgument(Where(tensor, rank), ": tp=", tp, " is not a multiple of ", heads,
                               " kv heads");
      }
      const int64_t head = tp_rank / (tp / heads);
      out.push_back({offset + head * hd, offset + (head + 1) * hd});
    }
    offset += rows;
  }
  return out;
}

Status CheckBlockAligned(const TensorShape2D& tensor, const LocalLayout& layout, int rank) {
  if (!tensor.fp8) return Status::Ok();
  auto aligned = [](const Range& r, int64_t extent) {
    return r.begin % kFp8BlockSize == 0 && (r.end % kFp8BlockSize == 0 || r.end >= extent);
  };
  for (const Range& r : layout.rows) {
    if (!aligned(r, tensor.rows)) {
      return InvalidArgument(Where(tensor, rank), ": FP8 shard rows [", r.begin, ", ", r.end,
                             ") are not on 128-row blocks, so the scale blocks cannot be split "
                             "(vLLM refuses it too)");
    }
  }
  if (!aligned(layout.cols, tensor.cols)) {
    return InvalidArgument(Where(tensor, rank), ": FP8 shard columns [", layout.cols.begin, ", ",
                           layout.cols.end, ") are not on 128-column blocks");
  }
  return Status::Ok();
}

}  // namespace

Range ChunkRange(int64_t n, int64_t parts, int64_t i) {
  const int64_t chunk = CeilDiv(n, parts);
  const int64_t begin = std::min(n, i * chunk);
  return {begin, std::min(n, begin + chunk)};
}

int64_t ChunkOf(int64_t n, int64_t parts, int64_t x) { return x / CeilDiv(n, parts); }

int TrainerParallelism::ExpertShard(int64_t experts, int64_t expert) const {
  const int64_t ep_rank = ChunkOf(experts, ep, expert);
  const Range mine = ChunkRange(experts, ep, ep_rank);
  const int64_t efsdp_rank = ChunkOf(mine.size(), fsdp / ep, expert - mine.begin);
  return static_cast<int>(efsdp_rank * ep + ep_rank);
}

Range TrainerParallelism::ExpertsOf(int64_t experts, int shard) const {
  const Range mine = ChunkRange(experts, ep, shard % ep);
  const Range part = ChunkRange(mine.size(), fsdp / ep, shard / ep);
  return {mine.begin + part.begin, mine.begin + part.end};
}

Status TrainerParallelism::CheckExpertStack(const std::string& tensor, int64_t experts) const {
  if (ep > 1 && fsdp > experts) {
    return InvalidArgument("trainer parallelism ", ToString(), ": expert stack ", tensor, " has ",
                           experts, " experts, fewer than fsdp=", fsdp,
                           " ranks; torchtitan then shards each expert's rows (FSDP Shard(1) "
                           "over efsdp), which the plan does not model; use fsdp <= ",
                           experts, " or ep=1");
  }
  return Status::Ok();
}

Status TrainerParallelism::Validate() const {
  if (fsdp < 1 || ep < 1 || hsdp < 1 || gpus_per_node < 1) {
    return InvalidArgument("trainer parallelism ", ToString(), ": sizes must be positive");
  }
  if (fsdp % ep != 0) {
    return InvalidArgument("trainer parallelism ", ToString(), ": ep must divide fsdp");
  }
  return Status::Ok();
}

std::string TrainerParallelism::ToString() const {
  return StrCat("fsdp=", fsdp, ",ep=", ep, ",hsdp=", hsdp,
                ",senders=", all_replicas_send ? "all" : "replica0");
}

Status InferenceParallelism::Validate() const {
  if (tp < 1 || dp < 1 || replicas < 1 || gpus_per_node < 1) {
    return InvalidArgument("inference parallelism ", ToString(), ": sizes must be positive");
  }
  return Status::Ok();
}

std::string InferenceParallelism::ToString() const {
  return StrCat("tp=", tp, ",dp=", dp, ",ep=", expert_parallel ? ranks() : 1,
                ",placement=", placement == ExpertPlacement::kLinear ? "linear" : "round_robin",
                ",replicas=", replicas);
}

std::vector<int64_t> PlacedExperts(int64_t experts, const InferenceParallelism& inference,
                                   int rank) {
  const int64_t ranks = inference.ranks();
  std::vector<int64_t> out;
  if (inference.placement == ExpertPlacement::kRoundRobin) {
    for (int64_t e = rank; e < experts; e += ranks) out.push_back(e);
    return out;
  }
  // vLLM's "linear": contiguous ranges, the remainder one each to the lowest ranks.
  const int64_t base = experts / ranks, remainder = experts % ranks;
  const int64_t begin = rank * base + std::min<int64_t>(rank, remainder);
  const int64_t count = base + (rank < remainder ? 1 : 0);
  for (int64_t e = begin; e < begin + count; ++e) out.push_back(e);
  return out;
}

int64_t LocalLayout::local_rows() const {
  int64_t n = 0;
  for (const Range& r : rows) n += r.size();
  return n;
}

Result<LocalLayout> DestinationLayout(const TensorShape2D& tensor, const ModelDims& dims,
                                      const InferenceParallelism& inference, int rank) {
  LocalLayout out;
  for (int64_t p = 0; p < tensor.parts; ++p) out.parts.push_back(p);
  out.rows = {{0, tensor.rows}};
  out.cols = {0, tensor.cols};
  const int64_t tp = inference.tp, tp_rank = rank % inference.tp;
  const int64_t moe_ranks = inference.ranks();
  const bool expert_tensor = tensor.parallel == TensorParallelism::kExpertColumn ||
                             tensor.parallel == TensorParallelism::kExpertRow;
  if (expert_tensor != tensor.stacked) {
    return InvalidArgument(Where(tensor, rank),
                           ": expert parallelism needs a stacked [E, ...] "
                           "tensor and a stacked tensor needs expert parallelism");
  }
  switch (tensor.parallel) {
    case TensorParallelism::kUnspecified:
      return InvalidArgument(Where(tensor, rank),
                             ": the target rule has no \"parallel\", so the "
                             "planner cannot tell how the engine splits it");
    case TensorParallelism::kReplicated:
      break;
    case TensorParallelism::kColumn: {
      WS_ASSIGN_OR_RETURN(out.rows, SplitEachSource(tensor, tp, tp_rank, rank));
      break;
    }
    case TensorParallelism::kQkv: {
      WS_ASSIGN_OR_RETURN(out.rows, QkvRows(tensor, dims, tp, tp_rank, rank));
      break;
    }
    case TensorParallelism::kRow:
      if (tensor.cols % tp != 0) {
        return InvalidArgument(Where(tensor, rank), ": ", tensor.cols,
                               " columns do not split over "
                               "tp=",
                               tp);
      }
      out.cols = {tp_rank * tensor.cols / tp, (tp_rank + 1) * tensor.cols / tp};
      break;
    case TensorParallelism::kVocab: {
      const int64_t padded = CeilDiv(tensor.rows, kVocabPadding) * kVocabPadding;
      if (padded % tp != 0) {
        return InvalidArgument(Where(tensor, rank), ": padded vocabulary ", padded,
                               " does not split over tp=", tp);
      }
      out.rows = {{tp_rank * padded / tp, (tp_rank + 1) * padded / tp}};
      break;
    }
    case TensorParallelism::kExpertColumn:
    case TensorParallelism::kExpertRow:
      if (inference.expert_parallel) {
        out.parts = PlacedExperts(tensor.parts, inference, rank);
      } else if (tensor.parallel == TensorParallelism::kExpertColumn) {
        WS_ASSIGN_OR_RETURN(out.rows, SplitEachSource(tensor, moe_ranks, rank, rank));
      } else {
        if (tensor.cols % moe_ranks != 0) {
          return InvalidArgument(Where(tensor, rank), ": ", tensor.cols,
                                 " columns do not split "
                                 "over ",
                                 moe_ranks, " MoE tensor-parallel ranks");
        }
        out.cols = {rank * tensor.cols / moe_ranks, (rank + 1) * tensor.cols / moe_ranks};
      }
      break;
  }
  WS_RETURN_IF_ERROR(CheckBlockAligned(tensor, out, rank));
  return out;
}

LocalLayout ScaleLayout(const LocalLayout& weight, int64_t rows, int64_t cols) {
  LocalLayout out;
  out.parts = weight.parts;
  for (const Range& r : weight.rows) {
    out.rows.push_back({r.begin / kFp8BlockSize, CeilDiv(std::min(r.end, rows), kFp8BlockSize)});
  }
  out.cols = {weight.cols.begin / kFp8BlockSize,
              CeilDiv(std::min(weight.cols.end, cols), kFp8BlockSize)};
  return out;
}

}  // namespace weightsync
