#include "demo/demo_weights.h"

#include <xxhash.h>


#include "convert/cuda/device_ops.h"
#include "core/parallel_for.h"
#include "demo/demo_pattern.h"
#include "demo/demo_pattern_cuda.h"

namespace weightsync::demo {

DemoWeights::DemoWeights(const agent::JobPlan& job, uint64_t seed) : job_(job), seed_(seed) {
  for (const SourceTensor& source : job.sources) {
    std::vector<uint8_t>& buffer = buffers_[source.name];
    buffer.resize(NumElements(source.shape) * DTypeSize(source.dtype));
    views_[source.name] = TensorView::Contiguous(buffer.data(), source.shape, source.dtype);
  }
}

void DemoWeights::Fill(uint64_t step) {
  for (const SourceTensor& source : job_.sources) {
    const uint64_t tensor_hash = XXH64(source.name.data(), source.name.size(), seed_);
    const int64_t cols = source.shape.size() >= 2 ? source.shape.back() : 1;
    const int64_t count = NumElements(source.shape);
    void* data = buffers_.at(source.name).data();
    const bool bf16 = source.dtype == DType::kBF16;
    const int threads = count < (1 << 18) ? 1 : 0;
    (void)ParallelFor(count, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float value = pattern::Value(tensor_hash, step, i, cols);
        if (bf16) {
          static_cast<uint16_t*>(data)[i] = pattern::ToBF16(value);
        } else {
          static_cast<float*>(data)[i] = value;
        }
      }
      return Status::Ok();
    });
  }
}

Result<std::map<std::string, TensorView>> DemoWeights::ShardViews(int rank) const {
  std::map<std::string, TensorView> out;
  for (const agent::SourceShard& shard : job_.ShardsOf(rank)) {
    WS_ASSIGN_OR_RETURN(TensorView view, views_.at(shard.name).Narrow(shard.first_dim.begin,
                                                                       shard.first_dim.size()));
    out[shard.name] = view;
  }
  return out;
}

Result<std::unique_ptr<DeviceDemoWeights>> DeviceDemoWeights::Create(const agent::JobPlan& job,
                                                                     uint64_t seed, int device,
                                                                     int trainer_rank) {
  std::unique_ptr<DeviceDemoWeights> out(new DeviceDemoWeights());
  out->device_ = device;
  WS_RETURN_IF_ERROR(SetCudaDevice(device));
  for (const SourceTensor& source : job.sources) {
    Entry entry;
    Shape shape = source.shape;
    const int64_t inner = shape.empty() || shape[0] == 0 ? 1 : NumElements(shape) / shape[0];
    if (trainer_rank >= 0) {
      const agent::SourceShard shard =
          job.ShardOf(source, trainer_rank % job.plan.options.trainer.fsdp);
      shape = shard.local_shape();
      entry.first_element = shard.first_dim.begin * inner;
    }
    entry.hash = XXH64(source.name.data(), source.name.size(), seed);
    entry.cols = source.shape.size() >= 2 ? source.shape.back() : 1;
    const int64_t bytes = NumElements(shape) * static_cast<int64_t>(DTypeSize(source.dtype));
    WS_ASSIGN_OR_RETURN(void* data, DeviceAlloc(bytes));
    entry.view = TensorView::Contiguous(data, shape, source.dtype, Device{DeviceKind::kCuda, device});
    out->views_[source.name] = entry.view;
    out->entries_.push_back(entry);
  }
  return out;
}

DeviceDemoWeights::~DeviceDemoWeights() {
  for (const Entry& e : entries_) DeviceFree(e.view.data);
}

Status DeviceDemoWeights::Fill(uint64_t step) {
  WS_RETURN_IF_ERROR(SetCudaDevice(device_));
  for (const Entry& e : entries_) {
    WS_RETURN_IF_ERROR(FillPatternOnDevice(e.view.data, e.view.dtype, e.view.numel(),
                                           e.first_element, e.cols, e.hash, step));
  }
  return Status::Ok();
}

}  // namespace weightsync::demo
