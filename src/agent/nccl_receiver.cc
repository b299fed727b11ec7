#include "agent/nccl_receiver.h"

#include <algorithm>

#include "convert/conversion_spec.h"
#include "convert/cuda/convert_cuda.h"
#include "convert/cuda/device_ops.h"
#include "plan/layout.h"

namespace weightsync::agent {
namespace {

// Scratch for converting tensor-parallel destinations as full tensors: split destinations are
// converted in batches that fit (a larger one gets a batch of its own).
constexpr int64_t kScratchBytes = int64_t{1} << 30;
constexpr int64_t kScratchAlignment = 256;

int64_t Aligned(int64_t n) {
  return (n + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
}

// Copies of `layout` (local parts in order, row ranges, one column range) out of a full tensor of
// `rows` x `cols` elements per part, holding the rank's parts only, in local order.
void AddSliceCopies(const LocalLayout& layout, int64_t rows, int64_t cols, int64_t element,
                    const uint8_t* full, uint8_t* local, std::vector<StridedCopy>& out) {
  const int64_t local_rows = layout.local_rows();
  const int64_t local_cols = layout.cols.size();
  for (size_t p = 0; p < layout.parts.size(); ++p) {
    int64_t local_row = 0;
    for (const Range& range : layout.rows) {
      const int64_t end = std::min(range.end, rows);  // rows past the end are padding (vocab)
      if (end > range.begin) {
        out.push_back({local + ((p * local_rows + local_row) * local_cols) * element,
                       static_cast<size_t>(local_cols * element),
                       full + ((p * rows + range.begin) * cols + layout.cols.begin) * element,
                       static_cast<size_t>(cols * element),
                       static_cast<size_t>(local_cols * element),
                       static_cast<size_t>(end - range.begin)});
      }
      local_row += range.size();
    }
  }
}

// Whether `layout` is the whole tensor in order (padding rows after the end allowed): the plan
// sees a 1D tensor as [n, 1], a conversion as one row of n. Row ranges one after the other from
// 0 (a fused [gate; up] comes as two) hold the rows in order, as the full tensor has them.
bool HoldsWhole(const LocalLayout& layout, const ResolvedConversion& resolved) {
  bool in_order = !layout.rows.empty() && layout.rows.front().begin == 0;
  for (size_t r = 1; r < layout.rows.size(); ++r) {
    in_order = in_order && layout.rows[r].begin == layout.rows[r - 1].end;
  }
  return in_order && layout.cols.begin == 0 &&
         (resolved.rows == 1
              ? layout.local_rows() * layout.cols.size() >= resolved.cols
              : layout.cols.size() == resolved.cols && layout.rows.back().end >= resolved.rows);
}

}  // namespace

struct NcclReceiver::Work {
  ReceivePlan plan;
  CudaConverter converter;
  CudaStream stream = nullptr;
  void* scratch = nullptr;
};

NcclReceiver::~NcclReceiver() {
  for (const TensorView& b : buffers_) DeviceFree(b.data);
  if (work_) {
    DeviceFree(work_->scratch);
    DestroyCudaStream(work_->stream);
  }
}

Result<ReceivePlan> PlanReceive(const JobPlan& job, int rank,
                                const std::map<std::string, TensorView>& sources,
                                const std::map<std::string, TensorView>& destinations,
                                const std::function<Result<void*>(int64_t)>& allocate_scratch) {
  ReceivePlan out;
  const auto registered = [&](const std::string& name) -> Result<uint8_t*> {
    auto it = destinations.find(name);
    if (it == destinations.end()) return NotFound("inference ", rank, ": no tensor ", name);
    return static_cast<uint8_t*>(it->second.data);
  };
  WS_ASSIGN_OR_RETURN(ConversionPlan conversion, job.Conversions());
  std::map<std::string, size_t> planned;  // destination name -> plan tensor index
  for (size_t i = 0; i < job.plan.tensors.size(); ++i) planned[job.plan.tensors[i].shape.name] = i;
  const int local = rank % job.plan.options.inference.ranks();
  const SourceLookup lookup = [&](const std::string& name) -> Result<TensorView> {
    auto it = sources.find(name);
    if (it == sources.end()) return NotFound("inference ", rank, ": no received source ", name);
    return it->second;
  };

  ReceivePlan::Batch whole;
  struct Split {
    const ResolvedConversion* resolved;
    const PlannedTensor* tensor;
    int64_t weight_bytes, scale_bytes;
  };
  std::vector<Split> splits;
  for (const ConversionSpec& spec : conversion.specs) {
    auto it = planned.find(spec.destination);
    if (it == planned.end()) continue;
    const PlannedTensor& tensor = job.plan.tensors[it->second];
    const LocalLayout& layout = tensor.layouts[local];
    if (layout.empty()) continue;  // another rank's experts only
    WS_ASSIGN_OR_RETURN(ResolvedConversion resolved, ResolveConversion(spec, lookup));
    // Keep this rank's parts (experts), numbered in its local order.
    std::vector<ConversionPiece> mine;
    for (ConversionPiece piece : resolved.pieces) {
      auto at = std::find(layout.parts.begin(), layout.parts.end(), piece.part);
      if (at == layout.parts.end()) continue;
      piece.part = at - layout.parts.begin();
      mine.push_back(std::move(piece));
    }
    resolved.pieces = std::move(mine);
    const ResolvedConversion& kept = out.resolved.emplace_back(std::move(resolved));
    if (HoldsWhole(layout, kept)) {
      float* scale = nullptr;
      if (kept.spec.quantization.quantized()) {
        WS_ASSIGN_OR_RETURN(uint8_t * s, registered(kept.spec.scale_name()));
        scale = reinterpret_cast<float*>(s);
      }
      WS_ASSIGN_OR_RETURN(uint8_t * weight, registered(spec.destination));
      for (const ConvertJob& j : ConversionJobs(kept, weight, scale)) whole.jobs.push_back(j);
      continue;
    }
    const auto parts = static_cast<int64_t>(layout.parts.size());
    const int64_t element = DTypeSize(kept.spec.quantization.destination_dtype);
    const int64_t blocks =
        CeilDiv(tensor.shape.rows, kFp8BlockSize) * CeilDiv(tensor.shape.cols, kFp8BlockSize);
    splits.push_back({&kept, &tensor,
                      Aligned(parts * tensor.shape.rows * tensor.shape.cols * element),
                      kept.spec.quantization.quantized() ? Aligned(parts * blocks * 4) : 0});
  }
  if (!whole.jobs.empty()) out.batches.push_back(std::move(whole));
  if (splits.empty()) return out;

  int64_t capacity = kScratchBytes;
  for (const Split& s : splits) capacity = std::max(capacity, s.weight_bytes + s.scale_bytes);
  WS_ASSIGN_OR_RETURN(void* scratch_memory, allocate_scratch(capacity));
  auto* scratch = static_cast<uint8_t*>(scratch_memory);
  int64_t used = capacity;  // start a batch at the first split
  for (const Split& s : splits) {
    if (used + s.weight_bytes + s.scale_bytes > capacity) {
      out.batches.emplace_back();
      used = 0;
    }
    ReceivePlan::Batch& batch = out.batches.back();
    uint8_t* weight = scratch + used;
    uint8_t* scale = weight + s.weight_bytes;
    used += s.weight_bytes + s.scale_bytes;
    const ResolvedConversion& resolved = *s.resolved;
    const PlannedTensor& tensor = *s.tensor;
    for (const ConvertJob& j : ConversionJobs(
             resolved, weight, s.scale_bytes ? reinterpret_cast<float*>(scale) : nullptr)) {
      batch.jobs.push_back(j);
    }
    const LocalLayout& layout = tensor.layouts[local];
    WS_ASSIGN_OR_RETURN(uint8_t * local_weight, registered(resolved.spec.destination));
    AddSliceCopies(layout, tensor.shape.rows, tensor.shape.cols,
                   DTypeSize(resolved.spec.quantization.destination_dtype), weight, local_weight,
                   batch.copies);
    if (s.scale_bytes) {
      WS_ASSIGN_OR_RETURN(uint8_t * local_scale, registered(resolved.spec.scale_name()));
      AddSliceCopies(ScaleLayout(layout, tensor.shape.rows, tensor.shape.cols),
                     CeilDiv(tensor.shape.rows, kFp8BlockSize),
                     CeilDiv(tensor.shape.cols, kFp8BlockSize), 4, scale, local_scale,
                     batch.copies);
    }
  }
  return out;
}

Result<std::unique_ptr<NcclReceiver>> NcclReceiver::Create(
    const JobPlan& job, int rank, const std::map<std::string, TensorView>& destinations,
    int device) {
  std::unique_ptr<NcclReceiver> out(new NcclReceiver());
  out->work_ = std::make_unique<Work>();
  Work& work = *out->work_;
  out->buckets_ = NcclBuckets(job);
  WS_RETURN_IF_ERROR(SetCudaDevice(device));
  WS_ASSIGN_OR_RETURN(work.stream, CreateCudaStream());
  std::map<std::string, TensorView> by_name;
  for (const SourceTensor& source : job.sources) {
    WS_ASSIGN_OR_RETURN(void* data, DeviceAlloc(source.bytes()));
    out->buffers_.push_back(TensorView::Contiguous(data, source.shape, source.dtype,
                                                   Device{DeviceKind::kCuda, device}));
    by_name[source.name] = out->buffers_.back();
  }
  WS_ASSIGN_OR_RETURN(
      work.plan, PlanReceive(job, rank, by_name, destinations, [&](int64_t bytes) -> Result<void*> {
        WS_ASSIGN_OR_RETURN(work.scratch, DeviceAlloc(bytes));
        return work.scratch;
      }));
  return out;
}

Status NcclReceiver::Receive(NcclCommunicator& broadcast, control::Deadline deadline) {
  for (const std::vector<size_t>& bucket : buckets_) {
    std::vector<TensorView> views;
    for (size_t i : bucket) views.push_back(buffers_[i]);
    WS_RETURN_IF_ERROR(broadcast.Broadcast(views, deadline));
  }
  return Status::Ok();
}

Status NcclReceiver::Convert() {
  Work& work = *work_;
  for (const ReceivePlan::Batch& batch : work.plan.batches) {
    // Finish waits for the batch, so the next batch may reuse the scratch behind these copies
    // (same stream).
    WS_RETURN_IF_ERROR(work.converter.Enqueue(batch.jobs, work.stream));
    WS_RETURN_IF_ERROR(work.converter.Finish());
    for (const StridedCopy& c : batch.copies) {
      WS_RETURN_IF_ERROR(CopyDevice2DAsync(c.dst, c.dst_pitch, c.src, c.src_pitch, c.width,
                                           c.height, work.stream));
    }
  }
  return SynchronizeCudaStream(work.stream);
}

}  // namespace weightsync::agent
