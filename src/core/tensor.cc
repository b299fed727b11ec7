#include "weightsync/tensor.h"

namespace weightsync {

std::string Device::ToString() const {
  return kind == DeviceKind::kCpu ? std::string("cpu") : StrCat("cuda:", index);
}

std::string ShapeToString(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Shape ContiguousStrides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

TensorView TensorView::Contiguous(void* data, Shape shape, DType dtype, Device device) {
  TensorView v;
  v.data = data;
  v.strides = ContiguousStrides(shape);
  v.shape = std::move(shape);
  v.dtype = dtype;
  v.device = device;
  return v;
}

int64_t TensorView::stride(int64_t d) const {
  if (strides.empty()) return ContiguousStrides(shape)[static_cast<size_t>(d)];
  return strides[static_cast<size_t>(d)];
}

bool TensorView::is_contiguous() const {
  if (strides.empty()) return true;
  Shape expected = ContiguousStrides(shape);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 1 && strides[i] != expected[i]) return false;
  }
  return true;
}

Result<TensorView> TensorView::Select(int64_t index) const {
  if (shape.empty()) return InvalidArgument("cannot select from a 0-d tensor");
  if (index < 0 || index >= shape[0]) {
    return OutOfRange("index ", index, " out of range for dimension 0 of ", ShapeToString(shape));
  }
  TensorView v = *this;
  v.data = static_cast<char*>(data) +
           index * stride(0) * static_cast<int64_t>(DTypeSize(dtype));
  v.strides = strides.empty() ? ContiguousStrides(shape) : strides;
  v.shape.erase(v.shape.begin());
  v.strides.erase(v.strides.begin());
  return v;
}

Result<TensorView> TensorView::Narrow(int64_t begin, int64_t count) const {
  if (shape.empty()) return InvalidArgument("cannot narrow a 0-d tensor");
  if (begin < 0 || count < 0 || begin + count > shape[0]) {
    return OutOfRange("rows [", begin, ", ", begin + count, ") out of range for ",
                      ShapeToString(shape));
  }
  TensorView v = *this;
  v.data = static_cast<char*>(data) +
           begin * stride(0) * static_cast<int64_t>(DTypeSize(dtype));
  v.strides = strides.empty() ? ContiguousStrides(shape) : strides;
  v.shape[0] = count;
  return v;
}

std::string TensorView::ToString() const {
  return StrCat(DTypeTorchName(dtype), ShapeToString(shape), " ", device.ToString());
}

}  // namespace weightsync
