// Reading model dimensions from a Hugging Face config.json, and the limits every set of
// dimensions must respect before the planner does any work with it (docs/plan.md "Limits").
#include <nlohmann/json.hpp>
#include <optional>

#include "io/utf8.h"
#include "model/json_fields.h"
#include "plan/model_dims.h"

namespace weightsync {
namespace {

using nlohmann::json;

// One dimension: its config.json key, where it lives in ModelDims, and its largest value. The
// bounds are a few times the largest published models (hidden 16384, vocab 256k, 128 layers, 384
// experts, 128 heads), so a real model fits while a typo or a hostile file cannot make the
// planner run for minutes or allocate terabytes.
struct DimensionField {
  const char* key;
  int64_t ModelDims::*member;
  int64_t max;
};

constexpr DimensionField kDimensionFields[] = {
    {"hidden_size", &ModelDims::hidden, 1 << 16},
    {"vocab_size", &ModelDims::vocab, 1 << 22},
    {"num_hidden_layers", &ModelDims::layers, 1024},
    {"intermediate_size", &ModelDims::intermediate, 1 << 20},
    {"moe_intermediate_size", &ModelDims::moe_intermediate, 1 << 18},
    {"first_k_dense_replace", &ModelDims::first_k_dense, 1024},
    {"n_routed_experts", &ModelDims::experts, 4096},
    {"n_shared_experts", &ModelDims::shared_experts, 64},
    {"num_attention_heads", &ModelDims::heads, 1024},
    {"num_key_value_heads", &ModelDims::kv_heads, 1024},
    {"head_dim", &ModelDims::head_dim, 4096},
    {"q_lora_rank", &ModelDims::q_lora, 1 << 16},
    {"kv_lora_rank", &ModelDims::kv_lora, 1 << 16},
    {"qk_rope_head_dim", &ModelDims::rope, 4096},
    {"qk_nope_head_dim", &ModelDims::nope, 4096},
    {"v_head_dim", &ModelDims::v_head, 4096},
    {"index_n_heads", &ModelDims::index_heads, 1024},
    {"index_head_dim", &ModelDims::index_head_dim, 4096},
};

// `key` must be at least 1 (given the condition under which the model uses it).
Status NeedPositive(const ModelDims& d, int64_t ModelDims::*member, const char* key,
                    std::string_view why) {
  if (d.*member >= 1) return Status::Ok();
  return InvalidArgument(key, " = ", d.*member, " must be positive", why);
}

// Fields the model's structure needs, by attention kind and MLP kind.
Status CheckRequiredFields(const ModelDims& d) {
  for (auto [member, key] : {std::pair{&ModelDims::hidden, "hidden_size"},
                             {&ModelDims::vocab, "vocab_size"},
                             {&ModelDims::layers, "num_hidden_layers"},
                             {&ModelDims::heads, "num_attention_heads"}}) {
    WS_RETURN_IF_ERROR(NeedPositive(d, member, key, ""));
  }
  if (d.experts == 0 || d.first_k_dense > 0) {
    WS_RETURN_IF_ERROR(
        NeedPositive(d, &ModelDims::intermediate, "intermediate_size", " (dense MLP layers)"));
  }
  if (d.experts > 0) {
    WS_RETURN_IF_ERROR(NeedPositive(d, &ModelDims::moe_intermediate, "moe_intermediate_size",
                                    " (routed experts)"));
  }
  if (d.mla()) {
    if (d.q_lora <= 0) {
      return Unimplemented(
          "MLA without q_lora_rank (DeepSeek-V2-Lite style) is not supported "
          "by the planner");
    }
    for (auto [member, key] : {std::pair{&ModelDims::rope, "qk_rope_head_dim"},
                               {&ModelDims::nope, "qk_nope_head_dim"},
                               {&ModelDims::v_head, "v_head_dim"}}) {
      WS_RETURN_IF_ERROR(NeedPositive(d, member, key, " (MLA attention: kv_lora_rank > 0)"));
    }
    if (d.index_heads > 0) {
      WS_RETURN_IF_ERROR(NeedPositive(d, &ModelDims::index_head_dim, "index_head_dim",
                                      " (DSA indexer: index_n_heads > 0)"));
    }
    return Status::Ok();
  }
  WS_RETURN_IF_ERROR(NeedPositive(d, &ModelDims::head_dim, "head_dim", " (attention heads)"));
  WS_RETURN_IF_ERROR(
      NeedPositive(d, &ModelDims::kv_heads, "num_key_value_heads", " (attention heads)"));
  if (d.kv_heads > d.heads) {
    return InvalidArgument("num_key_value_heads = ", d.kv_heads,
                           " exceeds num_attention_heads = ", d.heads);
  }
  return Status::Ok();
}

// The number of tensors CanonicalTensors lists, from above: at most 24 per layer besides three
// per routed expert (MLA + indexer + router + shared experts is 19).
int64_t TensorCountBound(const ModelDims& d) { return d.layers * (24 + 3 * d.experts) + 3; }

}  // namespace

Status CheckDims(const ModelDims& d) {
  for (const DimensionField& field : kDimensionFields) {
    const int64_t value = d.*field.member;
    if (value < 0 || value > field.max) {
      return InvalidArgument(field.key, " = ", value, " is out of range (0 to ", field.max, ")");
    }
  }
  WS_RETURN_IF_ERROR(CheckRequiredFields(d));
  // Every field is bounded above, so neither count can overflow.
  if (TensorCountBound(d) > kMaxModelTensors) {
    return InvalidArgument("num_hidden_layers = ", d.layers, " with n_routed_experts = ", d.experts,
                           " makes more than ", kMaxModelTensors, " tensors");
  }
  if (const int64_t parameters = ParameterCount(d); parameters > kMaxModelParameters) {
    return InvalidArgument("the model has ", parameters, " parameters, more than the limit of ",
                           kMaxModelParameters);
  }
  return Status::Ok();
}

namespace {

// A config.json integer: absent or null (Python's None, as in "q_lora_rank": null) is unset.
Result<std::optional<int64_t>> ConfigInteger(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::optional<int64_t>();
  WS_ASSIGN_OR_RETURN(int64_t value, JsonAs<int64_t>(*it, key));
  return std::optional<int64_t>(value);
}

// Reads every field of the dimension table; defaults follow transformers' config classes.
Status ReadDimensionFields(const json& doc, ModelDims& d) {
  for (const DimensionField& field : kDimensionFields) {
    WS_ASSIGN_OR_RETURN(std::optional<int64_t> value, ConfigInteger(doc, field.key));
    if (value) d.*field.member = *value;
  }
  // Qwen3-MoE says num_experts; DeepSeek and GLM say n_routed_experts.
  if (!doc.contains("n_routed_experts") || doc["n_routed_experts"].is_null()) {
    WS_ASSIGN_OR_RETURN(std::optional<int64_t> experts, ConfigInteger(doc, "num_experts"));
    if (experts) d.experts = *experts;
  }
  WS_ASSIGN_OR_RETURN(std::optional<int64_t> kv_heads, ConfigInteger(doc, "num_key_value_heads"));
  if (!kv_heads) d.kv_heads = d.heads;
  WS_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, ConfigInteger(doc, "head_dim"));
  if (!head_dim && d.heads > 0) d.head_dim = d.hidden / d.heads;
  return Status::Ok();
}

// Qwen3-MoE's sparse step / dense-only layer list: only the common "every layer" case.
Status CheckSparseLayout(const json& doc) {
  WS_ASSIGN_OR_RETURN(std::optional<int64_t> step, ConfigInteger(doc, "decoder_sparse_step"));
  auto only = doc.find("mlp_only_layers");
  if (only != doc.end() && !only->is_null() && !only->is_array()) {
    return InvalidArgument("field 'mlp_only_layers' must be a list, not ", JsonTypeName(*only));
  }
  if (step.value_or(1) != 1 || (only != doc.end() && only->is_array() && !only->empty())) {
    return Unimplemented(
        "decoder_sparse_step != 1 or mlp_only_layers is not supported by the "
        "planner");
  }
  return Status::Ok();
}

Result<ModelDims> ReadConfig(const json& top) {
  const json* doc = &top;
  // Multimodal configs nest the language model.
  if (auto text = top.find("text_config"); text != top.end() && !text->is_null()) {
    if (!text->is_object()) {
      return InvalidArgument("field 'text_config' must be an object, not ", JsonTypeName(*text));
    }
    doc = &*text;
  }
  ModelDims d;
  WS_ASSIGN_OR_RETURN(d.model_type, FieldOr<std::string>(*doc, "model_type", ""));
  WS_RETURN_IF_ERROR(ReadDimensionFields(*doc, d));
  d.qk_norm = d.model_type.starts_with("qwen3");
  WS_ASSIGN_OR_RETURN(d.tie_embeddings, FieldOr<bool>(*doc, "tie_word_embeddings", false));
  WS_RETURN_IF_ERROR(CheckSparseLayout(*doc));
  WS_RETURN_IF_ERROR(CheckDims(d));
  return d;
}

}  // namespace

Result<ModelDims> DimsFromHfConfig(const std::string& json_text, const std::string& origin) {
  const std::string where = "config " + EscapeForMessage(origin);
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument(where, ": not a JSON object");
  }
  Result<ModelDims> dims = ReadConfig(doc);
  if (!dims.ok()) return dims.status().WithContext(where);
  return dims;
}

}  // namespace weightsync
