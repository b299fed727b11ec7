// Model dimensions, and the source tensors a model of those dimensions has.
//
// The planner never loads weights: it needs only names, shapes and dtypes. Those come from a named
// preset (the real published dimensions) or a Hugging Face config.json, and are spelled first in
// canonical Hugging Face names (one 2D tensor per expert), then in any source format of a model
// spec by running that format's rules backwards, so no name table is duplicated here beyond the
// Hugging Face module names themselves.
//
// Threading: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/model_spec.h"
#include "weightsync/dtype.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"

namespace weightsync {

struct ModelDims {
  std::string model_type;  // Hugging Face model_type: glm_moe_dsa, deepseek_v3, qwen3_moe, ...
  int64_t hidden = 0;
  int64_t vocab = 0;
  int64_t layers = 0;
  int64_t intermediate = 0;      // dense MLP
  int64_t moe_intermediate = 0;  // per routed (and shared) expert
  int64_t first_k_dense = 0;     // layers [0, first_k_dense) have a dense MLP
  int64_t experts = 0;           // routed experts; 0 = dense model
  int64_t shared_experts = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  // GQA only
  int64_t head_dim = 0;  // GQA only
  int64_t q_lora = 0;    // MLA (kv_lora > 0)
  int64_t kv_lora = 0;
  int64_t rope = 0;
  int64_t nope = 0;
  int64_t v_head = 0;
  int64_t index_heads = 0;  // GLM-5 DSA indexer; 0 = none
  int64_t index_head_dim = 0;
  bool qk_norm = false;  // Qwen3 q_norm / k_norm
  bool tie_embeddings = false;

  bool mla() const { return kv_lora > 0; }
  bool moe_layer(int64_t layer) const { return experts > 0 && layer >= first_k_dense; }
};

// glm5, deepseek_v3, kimi_k2, qwen3_235b.
Result<ModelDims> PresetDims(std::string_view preset);
std::vector<std::string> PresetNames();
// "glm5, glm5_tiny, ...": for help texts and errors.
std::string PresetNamesText();

// Reads the dimensions out of a Hugging Face config.json's text; `origin` names it in errors.
// A field of the wrong JSON type, a dimension out of its range and a model past the limits below
// are InvalidArgument errors naming the file and the field.
Result<ModelDims> DimsFromHfConfig(const std::string& json_text, const std::string& origin);

// Limits on the whole model (docs/plan.md "Limits"), checked before any work: 15x and 17x the
// tensors and parameters of Kimi-K2 (69,975 tensors, 1.03 trillion parameters).
inline constexpr int64_t kMaxModelTensors = int64_t{1} << 20;
inline constexpr int64_t kMaxModelParameters = int64_t{1} << 44;  // 17.6 trillion

// Checks every dimension against its range (each field's bound, named by its config.json key)
// and the fields the model's structure needs (intermediate_size for dense layers, the MLA or
// GQA head dimensions, ...), and bounds the tensor and parameter counts. CanonicalTensors runs it
// first.
Status CheckDims(const ModelDims& dims);

// The parameters of CanonicalTensors' list, from the dimensions alone (no list is built), for
// dimensions whose fields are within CheckDims' ranges (no product overflows then).
int64_t ParameterCount(const ModelDims& dims);

// The built-in model spec serving this model_type (glm_moe_dsa, deepseek_v3, qwen3_moe, ...).
Result<std::string> ModelSpecForType(std::string_view model_type);

struct SourceTensor {
  std::string name;
  Shape shape;
  DType dtype = DType::kBF16;
  int64_t bytes() const { return NumElements(shape) * static_cast<int64_t>(DTypeSize(dtype)); }
};

// Every tensor of the model in Hugging Face checkpoint names (one 2D tensor per expert), in the
// dtype a trainer keeps it: bf16, except fp32 for the router bias and the indexer's k_norm.
// Refuses dimensions CheckDims refuses.
Result<std::vector<SourceTensor>> CanonicalTensors(const ModelDims& dims);

// The same tensors spelled in `format`: renamed, and stacked into [E, rows, cols] (or into row
// chunks of one stack: gate_up_proj) where the format's rules select experts.
Result<std::vector<SourceTensor>> TensorsInFormat(const std::vector<SourceTensor>& canonical,
                                                  const SourceFormat& format);

}  // namespace weightsync
