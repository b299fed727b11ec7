#include "plan/model_dims.h"

#include <algorithm>
#include <map>

#include "io/utf8.h"

namespace weightsync {
namespace {

struct Preset {
  std::string_view name;
  ModelDims dims;
};

ModelDims Glm5() {
  ModelDims d;
  d.model_type = "glm_moe_dsa";
  d.hidden = 6144, d.vocab = 154880, d.layers = 78, d.intermediate = 12288;
  d.moe_intermediate = 2048, d.first_k_dense = 3, d.experts = 256, d.shared_experts = 1;
  d.heads = 64, d.q_lora = 2048, d.kv_lora = 512, d.rope = 64, d.nope = 192, d.v_head = 256;
  d.index_heads = 32, d.index_head_dim = 128;
  return d;
}

// GLM-5's structure at laptop size for `weightsync demo` and the end-to-end tests: dense and MoE
// layers, MLA + DSA indexer, partial 128-blocks (hidden 448, kv_lora 192, vocab 1000), and every
// split a tensor-parallel degree of 1, 2 or 4 makes still on 128-blocks (as vLLM requires).
ModelDims Glm5Tiny() {
  ModelDims d = Glm5();
  d.hidden = 448, d.vocab = 1000, d.layers = 3, d.intermediate = 1024;
  d.moe_intermediate = 512, d.first_k_dense = 1, d.experts = 8, d.shared_experts = 1;
  d.heads = 8, d.q_lora = 256, d.kv_lora = 192;
  d.index_heads = 4;
  return d;
}

ModelDims DeepSeekV3() {
  ModelDims d;
  d.model_type = "deepseek_v3";
  d.hidden = 7168, d.vocab = 129280, d.layers = 61, d.intermediate = 18432;
  d.moe_intermediate = 2048, d.first_k_dense = 3, d.experts = 256, d.shared_experts = 1;
  d.heads = 128, d.q_lora = 1536, d.kv_lora = 512, d.rope = 64, d.nope = 128, d.v_head = 128;
  return d;
}

ModelDims KimiK2() {
  ModelDims d = DeepSeekV3();
  d.model_type = "kimi_k2";
  d.vocab = 163840, d.first_k_dense = 1, d.experts = 384, d.heads = 64;
  return d;
}

ModelDims Qwen3_235B() {
  ModelDims d;
  d.model_type = "qwen3_moe";
  d.hidden = 4096, d.vocab = 151936, d.layers = 94, d.intermediate = 12288;
  d.moe_intermediate = 1536, d.experts = 128, d.heads = 64, d.kv_heads = 4, d.head_dim = 128;
  d.qk_norm = true;
  return d;
}

// DeepSeek-V3's structure at laptop size: glm5_tiny without the DSA indexer.
ModelDims DeepSeekV3Tiny() {
  ModelDims d = Glm5Tiny();
  d.model_type = "deepseek_v3";
  d.index_heads = 0, d.index_head_dim = 0;
  return d;
}

// Qwen3-MoE's structure at laptop size (GQA with q/k norms, MoE in every layer), for the demo and
// the end-to-end tests; every split a tensor-parallel degree of 1 or 2 makes is on 128-blocks.
ModelDims Qwen3MoeTiny() {
  ModelDims d = Qwen3_235B();
  d.hidden = 320, d.vocab = 1000, d.layers = 2, d.intermediate = 512;
  d.moe_intermediate = 256, d.experts = 8, d.heads = 8, d.kv_heads = 4, d.head_dim = 128;
  return d;
}

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = {{"glm5", Glm5()},
                                              {"glm5_tiny", Glm5Tiny()},
                                              {"deepseek_v3", DeepSeekV3()},
                                              {"kimi_k2", KimiK2()},
                                              {"qwen3_235b", Qwen3_235B()},
                                              {"qwen3_moe_tiny", Qwen3MoeTiny()},
                                              {"deepseek_v3_tiny", DeepSeekV3Tiny()}};
  return presets;
}

std::string Layer(int64_t layer) { return StrCat("model.layers.", layer, "."); }

}  // namespace

Result<ModelDims> PresetDims(std::string_view preset) {
  for (const Preset& p : Presets()) {
    if (p.name == preset) return p.dims;
  }
  return NotFound("no model preset named '", EscapeForMessage(preset),
                  "' (known: ", PresetNamesText(), ")");
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : Presets()) names.emplace_back(p.name);
  return names;
}

std::string PresetNamesText() {
  std::string text;
  for (const std::string& n : PresetNames()) text += (text.empty() ? "" : ", ") + n;
  return text;
}

Result<std::string> ModelSpecForType(std::string_view model_type) {
  static const std::map<std::string, std::string, std::less<>> kSpecs = {
      {"glm_moe_dsa", "glm_moe_dsa"},
      {"deepseek_v3", "deepseek_v3"},
      {"kimi_k2", "deepseek_v3"},
      {"qwen3_moe", "qwen3_moe"},
      {"qwen3", "qwen3"},
      {"llama", "llama"}};
  auto it = kSpecs.find(model_type);
  if (it == kSpecs.end()) {
    return NotFound("no built-in model spec serves model_type '", EscapeForMessage(model_type),
                    "': pass --model with a spec name or file");
  }
  return it->second;
}

namespace {

// CanonicalTensors' list, for dimensions CheckDims accepted. ParameterCount below counts the
// same shapes: change both together.
std::vector<SourceTensor> ListTensors(const ModelDims& d) {
  std::vector<SourceTensor> out;
  auto add = [&](std::string name, Shape shape, DType dtype = DType::kBF16) {
    out.push_back({std::move(name), std::move(shape), dtype});
  };
  const int64_t h = d.hidden;
  add("model.embed_tokens.weight", {d.vocab, h});
  for (int64_t l = 0; l < d.layers; ++l) {
    const std::string p = Layer(l);
    add(p + "input_layernorm.weight", {h});
    add(p + "post_attention_layernorm.weight", {h});
    if (d.mla()) {
      add(p + "self_attn.q_a_proj.weight", {d.q_lora, h});
      add(p + "self_attn.q_a_layernorm.weight", {d.q_lora});
      add(p + "self_attn.q_b_proj.weight", {d.heads * (d.nope + d.rope), d.q_lora});
      add(p + "self_attn.kv_a_proj_with_mqa.weight", {d.kv_lora + d.rope, h});
      add(p + "self_attn.kv_a_layernorm.weight", {d.kv_lora});
      add(p + "self_attn.kv_b_proj.weight", {d.heads * (d.nope + d.v_head), d.kv_lora});
      add(p + "self_attn.o_proj.weight", {h, d.heads * d.v_head});
      if (d.index_heads > 0) {
        add(p + "self_attn.indexer.wq_b.weight", {d.index_heads * d.index_head_dim, d.q_lora});
        add(p + "self_attn.indexer.wk.weight", {d.index_head_dim, h});
        add(p + "self_attn.indexer.k_norm.weight", {d.index_head_dim}, DType::kF32);
        add(p + "self_attn.indexer.k_norm.bias", {d.index_head_dim}, DType::kF32);
        add(p + "self_attn.indexer.weights_proj.weight", {d.index_heads, h});
      }
    } else {
      add(p + "self_attn.q_proj.weight", {d.heads * d.head_dim, h});
      add(p + "self_attn.k_proj.weight", {d.kv_heads * d.head_dim, h});
      add(p + "self_attn.v_proj.weight", {d.kv_heads * d.head_dim, h});
      add(p + "self_attn.o_proj.weight", {h, d.heads * d.head_dim});
      if (d.qk_norm) {
        add(p + "self_attn.q_norm.weight", {d.head_dim});
        add(p + "self_attn.k_norm.weight", {d.head_dim});
      }
    }
    if (!d.moe_layer(l)) {
      add(p + "mlp.gate_proj.weight", {d.intermediate, h});
      add(p + "mlp.up_proj.weight", {d.intermediate, h});
      add(p + "mlp.down_proj.weight", {h, d.intermediate});
      continue;
    }
    add(p + "mlp.gate.weight", {d.experts, h});
    if (d.mla()) add(p + "mlp.gate.e_score_correction_bias", {d.experts}, DType::kF32);
    if (d.shared_experts > 0) {
      const int64_t si = d.moe_intermediate * d.shared_experts;
      add(p + "mlp.shared_experts.gate_proj.weight", {si, h});
      add(p + "mlp.shared_experts.up_proj.weight", {si, h});
      add(p + "mlp.shared_experts.down_proj.weight", {h, si});
    }
    for (int64_t e = 0; e < d.experts; ++e) {
      const std::string x = StrCat(p, "mlp.experts.", e, ".");
      add(x + "gate_proj.weight", {d.moe_intermediate, h});
      add(x + "up_proj.weight", {d.moe_intermediate, h});
      add(x + "down_proj.weight", {h, d.moe_intermediate});
    }
  }
  add("model.norm.weight", {h});
  if (!d.tie_embeddings) add("lm_head.weight", {d.vocab, h});
  return out;
}

}  // namespace

Result<std::vector<SourceTensor>> CanonicalTensors(const ModelDims& d) {
  WS_RETURN_IF_ERROR(CheckDims(d));
  return ListTensors(d);
}

int64_t ParameterCount(const ModelDims& d) {
  const int64_t h = d.hidden;
  int64_t attention = 0;
  if (d.mla()) {
    attention = d.q_lora * h + d.q_lora + d.heads * (d.nope + d.rope) * d.q_lora +
                (d.kv_lora + d.rope) * h + d.kv_lora + d.heads * (d.nope + d.v_head) * d.kv_lora +
                h * d.heads * d.v_head;
    if (d.index_heads > 0) {
      attention += d.index_heads * d.index_head_dim * d.q_lora + d.index_head_dim * h +
                   2 * d.index_head_dim + d.index_heads * h;
    }
  } else {
    attention = 2 * d.heads * d.head_dim * h + 2 * d.kv_heads * d.head_dim * h +
                (d.qk_norm ? 2 * d.head_dim : 0);
  }
  const int64_t dense_mlp = 3 * d.intermediate * h;
  const int64_t moe_mlp = d.experts * h + (d.mla() ? d.experts : 0) +
                          3 * d.moe_intermediate * d.shared_experts * h +
                          d.experts * 3 * d.moe_intermediate * h;
  const int64_t dense_layers = d.experts > 0 ? std::min(d.first_k_dense, d.layers) : d.layers;
  return d.vocab * h * (d.tie_embeddings ? 1 : 2) + h + d.layers * (2 * h + attention) +
         dense_layers * dense_mlp + (d.layers - dense_layers) * moe_mlp;
}

Result<std::vector<SourceTensor>> TensorsInFormat(const std::vector<SourceTensor>& canonical,
                                                  const SourceFormat& format) {
  // One source tensor assembled from canonical tensors: (index, chunk) pairs of a stack.
  struct Assembly {
    SourceTensor item;  // the canonical tensor's shape and dtype
    bool stacked = false;
    int64_t chunks = 1;
    int64_t max_index = -1;
    std::map<std::pair<int64_t, int64_t>, std::string> members;  // (index, chunk) -> canonical
  };
  std::vector<std::string> order;
  std::map<std::string, Assembly> assemblies;
  for (const SourceTensor& tensor : canonical) {
    const SourceRule* rule = nullptr;
    Bindings bindings;
    for (const SourceRule& r : format.rules) {
      bindings.clear();
      if (r.canonical.Match(tensor.name, &bindings)) {
        rule = &r;
        break;
      }
    }
    if (rule == nullptr) {
      order.push_back(tensor.name);
      assemblies[tensor.name].item = tensor;
      assemblies[tensor.name].members[{-1, 0}] = tensor.name;
      continue;
    }
    int64_t index = -1;
    if (!rule->select.empty()) {
      index = bindings.at(rule->select);
      bindings.erase(rule->select);
    }
    WS_ASSIGN_OR_RETURN(std::string name, rule->source.Format(bindings));
    auto [it, inserted] = assemblies.try_emplace(name);
    Assembly& a = it->second;
    if (inserted) {
      order.push_back(name);
      a.item = tensor;
      a.stacked = !rule->select.empty();
      a.chunks = rule->chunks;
    } else if (a.item.shape != tensor.shape || a.item.dtype != tensor.dtype ||
               a.chunks != rule->chunks || a.stacked != !rule->select.empty()) {
      return InvalidArgument("source format ", format.name, ": ", tensor.name, " ",
                             ShapeToString(tensor.shape), " does not stack with ",
                             a.members.begin()->second, " ", ShapeToString(a.item.shape), " into ",
                             name);
    }
    a.max_index = std::max(a.max_index, index);
    if (!a.members.emplace(std::pair{index, rule->chunk}, tensor.name).second) {
      return InvalidArgument("source format ", format.name, ": two tensors map to ", name);
    }
  }
  std::vector<SourceTensor> out;
  for (const std::string& name : order) {
    const Assembly& a = assemblies.at(name);
    const int64_t count = a.stacked ? a.max_index + 1 : 1;
    if (static_cast<int64_t>(a.members.size()) != count * a.chunks) {
      return InvalidArgument("source format ", format.name, ": ", name, " is missing pieces (",
                             a.members.size(), " of ", count * a.chunks, ")");
    }
    Shape shape = a.item.shape;
    if (a.chunks > 1) shape[0] *= a.chunks;
    if (a.stacked) shape.insert(shape.begin(), count);
    out.push_back({name, shape, a.item.dtype});
  }
  return out;
}

}  // namespace weightsync
