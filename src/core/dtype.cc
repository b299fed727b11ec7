#include "weightsync/dtype.h"

#include <array>

namespace weightsync {
namespace {

struct DTypeInfo {
  DType dtype;
  size_t size;
  std::string_view safetensors;
  std::string_view torch;
  bool floating;
};

constexpr std::array<DTypeInfo, 16> kDTypes = {{
    {DType::kBool, 1, "BOOL", "bool", false},
    {DType::kU8, 1, "U8", "uint8", false},
    {DType::kI8, 1, "I8", "int8", false},
    {DType::kI16, 2, "I16", "int16", false},
    {DType::kU16, 2, "U16", "uint16", false},
    {DType::kI32, 4, "I32", "int32", false},
    {DType::kU32, 4, "U32", "uint32", false},
    {DType::kI64, 8, "I64", "int64", false},
    {DType::kU64, 8, "U64", "uint64", false},
    {DType::kF16, 2, "F16", "float16", true},
    {DType::kBF16, 2, "BF16", "bfloat16", true},
    {DType::kF32, 4, "F32", "float32", true},
    {DType::kF64, 8, "F64", "float64", true},
    {DType::kF8E4M3, 1, "F8_E4M3", "float8_e4m3fn", true},
    {DType::kF8E5M2, 1, "F8_E5M2", "float8_e5m2", true},
    {DType::kF8E8M0, 1, "F8_E8M0", "float8_e8m0fnu", true},
}};

const DTypeInfo& Info(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }
std::string_view DTypeSafetensorsName(DType dtype) { return Info(dtype).safetensors; }
std::string_view DTypeTorchName(DType dtype) { return Info(dtype).torch; }
bool IsFloatingPoint(DType dtype) { return Info(dtype).floating; }

std::optional<DType> DTypeFromSafetensorsName(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (info.safetensors == name) return info.dtype;
  }
  return std::nullopt;
}

std::optional<DType> DTypeFromTorchName(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  for (const auto& info : kDTypes) {
    if (info.torch == name) return info.dtype;
  }
  return std::nullopt;
}

}  // namespace weightsync
