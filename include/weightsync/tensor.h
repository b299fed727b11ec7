// TensorView: a non-owning description of a strided tensor in host or GPU memory.
//
// Views never own memory; whoever created the memory keeps it alive for as long as views exist.
// Strides are in elements, as in PyTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weightsync/dtype.h"
#include "weightsync/status.h"

namespace weightsync {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // CUDA ordinal; 0 for the CPU

  bool operator==(const Device&) const = default;
  std::string ToString() const;  // "cpu", "cuda:1"
};

using Shape = std::vector<int64_t>;

std::string ShapeToString(const Shape& shape);  // "[256, 4096, 6144]"
int64_t NumElements(const Shape& shape);

// Row-major (C-contiguous) strides for a shape.
Shape ContiguousStrides(const Shape& shape);

struct TensorView {
  void* data = nullptr;
  Shape shape;
  Shape strides;  // elements; empty means contiguous
  DType dtype = DType::kF32;
  Device device;

  static TensorView Contiguous(void* data, Shape shape, DType dtype, Device device = {});

  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  int64_t numel() const { return NumElements(shape); }
  int64_t nbytes() const { return numel() * static_cast<int64_t>(DTypeSize(dtype)); }
  int64_t stride(int64_t d) const;  // resolved stride of dimension d
  bool is_contiguous() const;

  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data);
  }

  // The sub-tensor at `index` of dimension 0 (an expert of a [E, rows, cols] stack).
  Result<TensorView> Select(int64_t index) const;
  // Rows [begin, begin + count) of dimension 0.
  Result<TensorView> Narrow(int64_t begin, int64_t count) const;

  std::string ToString() const;  // "bfloat16[128, 6144] cpu"
};

}  // namespace weightsync
