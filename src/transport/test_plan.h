// Test support shared by transport_test and transport_test_peer: deterministic random buffers and
// write plans, so the target process can rebuild the expected image and verify every byte itself.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace weightsync::transport::testing {

inline uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline void FillRandom(uint64_t seed, std::span<uint8_t> out) {
  uint64_t state = seed;
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    const uint64_t v = SplitMix(state);
    std::memcpy(out.data() + i, &v, 8);
  }
  const uint64_t v = SplitMix(state);
  std::memcpy(out.data() + i, &v, out.size() - i);
}

struct PlannedWrite {
  uint64_t src_offset, dst_offset, length;
};

// Disjoint destination ranges (puts in flight are unordered, so overlapping writes would race)
// with lengths from 1 byte to max_write, sources anywhere in the source buffer.
inline std::vector<PlannedWrite> MakePlan(uint64_t seed, uint64_t src_size, uint64_t dst_size,
                                          uint64_t max_write) {
  std::vector<PlannedWrite> plan;
  uint64_t state = seed;
  uint64_t pos = 0;
  const uint64_t cap = std::min(max_write, src_size);
  // Always one 1-byte write first: the smallest case must be covered every run.
  if (dst_size > 0) plan.push_back({SplitMix(state) % src_size, 0, 1});
  pos = 1;
  while (pos < dst_size) {
    const uint64_t r = SplitMix(state);
    uint64_t limit = 0;
    switch (r % 4) {
      case 0: limit = 16; break;
      case 1: limit = 4096; break;
      case 2: limit = 1 << 20; break;
      default: limit = cap; break;
    }
    limit = std::max<uint64_t>(1, std::min(limit, cap));
    uint64_t length = 1 + SplitMix(state) % limit;
    const uint64_t gap = SplitMix(state) % 64;
    if (pos + gap >= dst_size) break;
    pos += gap;
    length = std::min(length, dst_size - pos);
    const uint64_t src = SplitMix(state) % (src_size - length + 1);
    plan.push_back({src, pos, length});
    pos += length;
  }
  return plan;
}

// The destination after the plan: `initial` with every write applied.
inline void ApplyPlan(const std::vector<PlannedWrite>& plan, std::span<const uint8_t> src,
                      std::span<uint8_t> dst) {
  for (const auto& w : plan) std::memcpy(dst.data() + w.dst_offset, src.data() + w.src_offset, w.length);
}

// Seeds: the source of a plan and the untouched destination, derived from the plan seed.
inline uint64_t SourceSeed(uint64_t seed) { return seed * 3 + 1; }
constexpr uint64_t kInitialSeed = 0xD57;

}  // namespace weightsync::transport::testing
