// Element types weightsync knows: every safetensors dtype, so any checkpoint can be read, and the
// subset the conversion engine computes with (bf16, fp16, fp32 sources; bf16, fp32, fp8 e4m3fn
// destinations; e8m0 scales have a place for power-of-two scale formats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace weightsync {

enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kF16,
  kBF16,
  kF32,
  kF64,
  kF8E4M3,  // float8_e4m3fn: no infinities, max 448, NaN = S.1111.111
  kF8E5M2,
  kF8E8M0,  // float8_e8m0fnu: power-of-two scales (UE8M0)
};

// Bytes per element.
size_t DTypeSize(DType dtype);

// Name as safetensors writes it ("BF16", "F8_E4M3", ...).
std::string_view DTypeSafetensorsName(DType dtype);
std::optional<DType> DTypeFromSafetensorsName(std::string_view name);

// Name as PyTorch spells it ("bfloat16", "float8_e4m3fn", ...), used in model spec files and the CLI.
std::string_view DTypeTorchName(DType dtype);
std::optional<DType> DTypeFromTorchName(std::string_view name);

bool IsFloatingPoint(DType dtype);

}  // namespace weightsync
