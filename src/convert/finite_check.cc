#include "convert/finite_check.h"

#include <cstring>

namespace weightsync {
namespace {

// A value is NaN or Inf exactly when its exponent bits are all ones. Chunks are OR-reduced
// without branches (the compiler vectorizes the inner loop); only a chunk that holds such a value
// is searched element by element.
template <typename Bits>
int64_t FirstWithExponent(const void* data, int64_t count, Bits exponent) {
  constexpr int64_t kChunk = 4096;
  const auto* bits = static_cast<const Bits*>(data);
  for (int64_t begin = 0; begin < count; begin += kChunk) {
    const int64_t end = std::min(count, begin + kChunk);
    Bits any = 0;
    for (int64_t i = begin; i < end; ++i) {
      any |= static_cast<Bits>((bits[i] & exponent) == exponent);
    }
    if (!any) continue;
    for (int64_t i = begin; i < end; ++i) {
      if ((bits[i] & exponent) == exponent) return i;
    }
  }
  return -1;
}

}  // namespace

int64_t FirstNonFinite(const void* data, DType dtype, int64_t count) {
  switch (dtype) {
    case DType::kBF16:
      return FirstWithExponent<uint16_t>(data, count, 0x7f80);
    case DType::kF16:
      return FirstWithExponent<uint16_t>(data, count, 0x7c00);
    case DType::kF32:
      return FirstWithExponent<uint32_t>(data, count, 0x7f800000u);
    default:
      return -1;
  }
}

}  // namespace weightsync
