#include "model/checkpoint_verification.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace weightsync {
namespace {

// "[3, 17]": the coordinate of element `flat` in `shape`.
std::string Coordinate(int64_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  return ShapeToString(index);
}

// Compares one expected tensor with the output's; appends a line to `report` when they differ.
void Compare(const std::string& name, const TensorView& expected, const Checkpoint& output,
             VerificationReport& report) {
  Result<const SafetensorsTensorInfo*> info = output.Info(name);
  if (!info.ok()) {
    report.differences.push_back(StrCat("tensor ", name, ": missing from the output"));
    return;
  }
  if ((*info)->dtype != expected.dtype || (*info)->shape != expected.shape) {
    report.differences.push_back(
        StrCat("tensor ", name, ": the output holds ", DTypeTorchName((*info)->dtype),
               ShapeToString((*info)->shape), ", the conversion gives ",
               DTypeTorchName(expected.dtype), ShapeToString(expected.shape)));
    return;
  }
  const TensorView actual = output.Find(name).value();
  const auto* a = static_cast<const uint8_t*>(actual.data);
  const auto* e = static_cast<const uint8_t*>(expected.data);
  const auto bytes = static_cast<size_t>(expected.nbytes());
  ++report.tensors_compared;
  report.bytes_compared += expected.nbytes();
  if (bytes == 0 || std::memcmp(a, e, bytes) == 0) {
    ++report.tensors_equal;
    return;
  }
  int64_t differing = 0;
  size_t first = bytes;
  for (size_t i = 0; i < bytes; ++i) {
    if (a[i] == e[i]) continue;
    ++differing;
    first = std::min(first, i);
  }
  const auto element = static_cast<int64_t>(first / DTypeSize(expected.dtype));
  report.differences.push_back(StrCat("tensor ", name, ": ", differing, " of ", bytes,
                                      " bytes differ, the first in element ",
                                      Coordinate(element, expected.shape)));
}

}  // namespace

Result<VerificationReport> VerifyCheckpoint(const ModelSpec& model,
                                            const std::filesystem::path& input,
                                            const std::filesystem::path& converted,
                                            const ConversionPlanOptions& plan, int threads) {
  WS_ASSIGN_OR_RETURN(PreparedConversion prepared, PrepareConversion(model, input, plan));
  WS_ASSIGN_OR_RETURN(Checkpoint output, Checkpoint::Open(converted));
  VerificationReport report;
  std::set<std::string, std::less<>> expected_names;
  for (const TensorDecl& decl : prepared.declared) expected_names.insert(decl.name);
  for (const std::string& name : output.names()) {
    if (!expected_names.contains(name)) {
      report.differences.push_back(
          StrCat("tensor ", name, ": in the output, but the conversion does not produce it"));
    }
  }
  std::vector<uint8_t> buffer;  // reused: the largest destination
  std::vector<float> scales;    // and the largest scale tensor
  for (const ResolvedConversion& r : prepared.resolved) {
    buffer.resize(std::max(buffer.size(), static_cast<size_t>(r.destination_bytes())));
    TensorView destination =
        TensorView::Contiguous(buffer.data(), r.shape, r.spec.quantization.destination_dtype);
    TensorView scale;
    if (r.spec.quantization.quantized()) {
      scales.resize(std::max(scales.size(), static_cast<size_t>(NumElements(r.scale_shape))));
      scale = TensorView::Contiguous(scales.data(), r.scale_shape, DType::kF32);
    }
    WS_RETURN_IF_ERROR(ExecuteConversion(r, destination, scale, threads));
    Compare(r.spec.destination, destination, output, report);
    if (r.spec.quantization.quantized()) Compare(r.spec.scale_name(), scale, output, report);
  }
  return report;
}

}  // namespace weightsync
