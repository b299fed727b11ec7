#include "source_shape_check.h"

#include <algorithm>
#include <exception>
#include <map>

#include "plan/model_dims.h"

namespace weightsync::cli {
namespace {

using ShapeMap = std::map<std::string, Shape>;

constexpr size_t kMaxReported = 10;
// More tensors than any real model has (GLM-5 has about 61,000): a config implying more is refused
// before listing them.
constexpr int64_t kMaxImpliedTensors = 10'000'000;

Result<ShapeMap> Spelled(const std::vector<SourceTensor>& canonical, const SourceFormat& format) {
  WS_ASSIGN_OR_RETURN(std::vector<SourceTensor> tensors, TensorsInFormat(canonical, format));
  ShapeMap shapes;
  for (SourceTensor& tensor : tensors) shapes.emplace(std::move(tensor.name), tensor.shape);
  return shapes;
}

Result<ModelDims> ReadDims(const std::string& text, const std::string& origin) {
  try {  // a config of the wrong JSON types must be an error, not an abort
    WS_ASSIGN_OR_RETURN(ModelDims dims, DimsFromHfConfig(text, origin));
    const int64_t per_layer = 3 * std::max<int64_t>(dims.experts, 1) + 32;
    if (dims.layers > kMaxImpliedTensors / per_layer) {
      return InvalidArgument("config ", origin, ": ", dims.layers, " layers of ", dims.experts,
                             " experts is more than any model has");
    }
    return dims;
  } catch (const std::exception& e) {
    return InvalidArgument("config ", origin, ": ", e.what());
  }
}

// The expected shapes of the embedding's companions, from the embedding found in `sources`.
Result<ShapeMap> FromEmbedding(const std::vector<SourceTensorInfo>& sources,
                               const SourceFormat& format, std::string& origin) {
  const std::vector<SourceTensor> canonical = {{"model.embed_tokens.weight", {1, 1}},
                                               {"lm_head.weight", {1, 1}},
                                               {"model.norm.weight", {1}}};
  std::vector<std::string> spelled;  // embed, lm_head, norm as the source format spells them
  for (const SourceTensor& c : canonical) {
    WS_ASSIGN_OR_RETURN(ShapeMap one, Spelled({c}, format));
    spelled.push_back(one.begin()->first);
  }
  ShapeMap expected;
  for (const SourceTensorInfo& source : sources) {
    if (source.name != spelled[0]) continue;
    if (source.shape.size() != 2) {
      return InvalidArgument("tensor ", source.name, " has shape ", ShapeToString(source.shape),
                             ", but an embedding is 2D [vocab_size, hidden_size]");
    }
    origin = StrCat("the embedding ", source.name, " ", ShapeToString(source.shape));
    expected = {{spelled[1], source.shape}, {spelled[2], {source.shape[1]}}};
  }
  return expected;
}

Status Compare(const std::vector<SourceTensorInfo>& sources, const ShapeMap& expected,
               const std::string& origin) {
  std::string problems;
  size_t count = 0;
  for (const SourceTensorInfo& source : sources) {
    auto it = expected.find(source.name);
    if (it == expected.end() || it->second == source.shape) continue;
    if (++count <= kMaxReported) {
      problems += StrCat(count > 1 ? "; " : "", "tensor ", source.name, " has shape ",
                         ShapeToString(source.shape), ", expected ", ShapeToString(it->second));
    }
  }
  if (count == 0) return Status::Ok();
  return InvalidArgument(count, " source tensor", count > 1 ? "s do" : " does",
                         " not match the model's dimensions (from ", origin, "): ", problems,
                         count > kMaxReported ? "; ..." : "");
}

}  // namespace

Result<SourceCheck> SourceShapeCheck(const ModelSpec& model, const std::string& source_format,
                                     const std::optional<std::string>& config_text,
                                     const std::string& origin) {
  WS_ASSIGN_OR_RETURN(const SourceFormat* format, model.FindSourceFormat(source_format));
  if (config_text) {
    Result<ModelDims> dims = ReadDims(*config_text, origin);
    if (dims.ok()) {
      WS_ASSIGN_OR_RETURN(std::vector<SourceTensor> canonical, CanonicalTensors(*dims));
      WS_ASSIGN_OR_RETURN(ShapeMap expected, Spelled(canonical, *format));
      return SourceCheck([expected = std::move(expected), origin](const auto& sources) {
        return Compare(sources, expected, StrCat("config ", origin));
      });
    }
    if (dims.status().code() != StatusCode::kUnimplemented) return dims.status();
  }
  return SourceCheck([format](const std::vector<SourceTensorInfo>& sources) -> Status {
    std::string embedding;
    WS_ASSIGN_OR_RETURN(ShapeMap expected, FromEmbedding(sources, *format, embedding));
    return Compare(sources, expected, embedding);
  });
}

}  // namespace weightsync::cli
