#include "demo/demo_weights.h"

#include <xxhash.h>

#include <cmath>

#include "core/float_bits.h"
#include "core/parallel_for.h"

namespace weightsync::demo {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-1, 1).
float Uniform(uint64_t bits) { return static_cast<float>(bits >> 40) / 8388608.0f - 1.0f; }

}  // namespace

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
        const int64_t row = i / cols, col = i % cols;
        const uint64_t block = static_cast<uint64_t>((row / 128) * 3 + (col / 128) * 5);
        const int exponent = static_cast<int>((block + tensor_hash) % 12);
        float value = 0;
        if (exponent != 11) {  // one block in twelve is all zeros
          const uint64_t h = SplitMix64(tensor_hash ^ static_cast<uint64_t>(i));
          const float update = 0.01f * static_cast<float>(step) * Uniform(SplitMix64(h));
          value = std::ldexp(Uniform(h) + update, -(exponent + 2));
        }
        if (bf16) {
          static_cast<uint16_t*>(data)[i] = FloatToBF16(value);
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

}  // namespace weightsync::demo
