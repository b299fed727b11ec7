"""A tiny GLM-5-shaped model (glm_moe_dsa): its Hugging Face tensors, how each source format spells
them, and, written out by hand from the seed's table (not from models/*.json), what the vllm and
hf-fp8 targets must contain. Dimensions leave partial 128-blocks everywhere they can."""
import numpy as np

from fp8_reference import cast, quantize_fp8, quantize_stack

DIMS = dict(vocab=1000, hidden=320, q_lora=256, kv_lora=128, rope=32, heads=2, nope=64, v=64,
            dense_inter=384, moe_inter=128, experts=4, layers=3, dense_layers=1, index_heads=2,
            index_dim=64)


def hf_config(dims=DIMS):
    """The Hugging Face config.json of the tiny model (GlmMoeDsaConfig's field names)."""
    d = dims
    return {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
            "vocab_size": d["vocab"], "hidden_size": d["hidden"], "num_hidden_layers": d["layers"],
            "intermediate_size": d["dense_inter"], "moe_intermediate_size": d["moe_inter"],
            "first_k_dense_replace": d["dense_layers"], "n_routed_experts": d["experts"],
            "n_shared_experts": 1, "num_attention_heads": d["heads"], "q_lora_rank": d["q_lora"],
            "kv_lora_rank": d["kv_lora"], "qk_rope_head_dim": d["rope"],
            "qk_nope_head_dim": d["nope"], "v_head_dim": d["v"], "index_n_heads": d["index_heads"],
            "index_head_dim": d["index_dim"], "tie_word_embeddings": False,
            "torch_dtype": "bfloat16"}


def canonical_tensors(rng, dtype, dims=DIMS):
    """Hugging Face names -> float32 arrays already holding values of `dtype` (bf16-representable
    for bfloat16). Edge cases are planted in chosen blocks."""
    d = dims
    H = d["hidden"]
    t = {}

    def w(name, *shape, std=0.02):
        t[name] = rng.normal(0.0, std, shape).astype(np.float32)

    w("model.embed_tokens.weight", d["vocab"], H)
    w("model.norm.weight", H, std=1.0)
    w("lm_head.weight", d["vocab"], H)
    for l in range(d["layers"]):
        p = f"model.layers.{l}."
        w(p + "input_layernorm.weight", H, std=1.0)
        w(p + "post_attention_layernorm.weight", H, std=1.0)
        w(p + "self_attn.q_a_proj.weight", d["q_lora"], H)
        w(p + "self_attn.q_a_layernorm.weight", d["q_lora"], std=1.0)
        w(p + "self_attn.q_b_proj.weight", d["heads"] * (d["nope"] + d["rope"]), d["q_lora"])
        w(p + "self_attn.kv_a_proj_with_mqa.weight", d["kv_lora"] + d["rope"], H)
        w(p + "self_attn.kv_a_layernorm.weight", d["kv_lora"], std=1.0)
        w(p + "self_attn.kv_b_proj.weight", d["heads"] * (d["nope"] + d["v"]), d["kv_lora"])
        w(p + "self_attn.o_proj.weight", H, d["heads"] * d["v"])
        w(p + "self_attn.indexer.wq_b.weight", d["index_heads"] * d["index_dim"], d["q_lora"])
        w(p + "self_attn.indexer.wk.weight", d["index_dim"], H)
        w(p + "self_attn.indexer.k_norm.weight", d["index_dim"], std=1.0)
        w(p + "self_attn.indexer.k_norm.bias", d["index_dim"], std=0.1)
        w(p + "self_attn.indexer.weights_proj.weight", d["index_heads"], H)
        if l < d["dense_layers"]:
            w(p + "mlp.gate_proj.weight", d["dense_inter"], H)
            w(p + "mlp.up_proj.weight", d["dense_inter"], H)
            w(p + "mlp.down_proj.weight", H, d["dense_inter"])
            continue
        I = d["moe_inter"]
        w(p + "mlp.gate.weight", d["experts"], H)
        w(p + "mlp.gate.e_score_correction_bias", d["experts"], std=0.1)
        w(p + "mlp.shared_experts.gate_proj.weight", I, H)
        w(p + "mlp.shared_experts.up_proj.weight", I, H)
        w(p + "mlp.shared_experts.down_proj.weight", H, I)
        for e in range(d["experts"]):
            w(p + f"mlp.experts.{e}.gate_proj.weight", I, H)
            w(p + f"mlp.experts.{e}.up_proj.weight", I, H)
            w(p + f"mlp.experts.{e}.down_proj.weight", H, I)

    # Edge cases, each in its own 128x128 block.
    q_b = t["model.layers.0.self_attn.q_b_proj.weight"]
    q_b[:128, :128] = 0.0                                   # all-zero block: scale floor 1e-12
    q_b[0, 200] = -0.0                                      # negative zero
    o = t["model.layers.1.self_attn.o_proj.weight"]
    o[:128, :128] = rng.normal(0, 1e-30, (128, 128))        # tiny values
    o[128:256, :128] = rng.normal(0, 1e-39, (128, 128))     # fp32 subnormals (bf16 subnormals too)
    kv_b = t["model.layers.2.self_attn.kv_b_proj.weight"]
    kv_b[:128, :128] = rng.normal(0, 1e37, (128, 128))      # huge values
    kv_b[0, 0] = 3.3e38                                     # near the bf16 maximum
    down = t["model.layers.1.mlp.shared_experts.down_proj.weight"]
    ties = np.array([448.0, 1.0625, 1.1875, -1.0625, 0.0029296875, 0.0009765625, 240.0, 208.0,
                     -0.013671875, 3.25], np.float32)       # amax 448 -> scale 1: exact e4m3 ties
    down[0, :ties.size] = ties
    down[1:128, :128] = 0.5
    gate_up_tie = t["model.layers.2.mlp.experts.3.gate_proj.weight"]
    gate_up_tie[:, -1] = 1.0 + 2.0 ** -8                    # a bf16 rounding tie in fp32 sources

    if dtype == "bfloat16":
        import ml_dtypes
        t = {k: v.astype(ml_dtypes.bfloat16) for k, v in t.items()}
    elif dtype == "float16":
        t = {k: np.clip(v, -60000, 60000).astype(np.float16) for k, v in t.items()}
    return t


_TITAN = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}


def source_tensors(canonical, source_format, dims=DIMS):
    """Respell canonical Hugging Face tensors in a source format."""
    if source_format == "hf":
        return dict(canonical)
    out = {}
    E = dims["experts"]
    for name, value in canonical.items():
        if ".mlp.experts." in name:
            continue  # written below as 3D stacks
        if source_format == "torchtitan":
            name = (name.replace("mlp.gate.weight", "mlp.router.gate.weight")
                        .replace("mlp.gate.e_score_correction_bias", "mlp.expert_bias"))
            for hf, tt in _TITAN.items():
                name = name.replace(f"mlp.shared_experts.{hf}.weight", f"mlp.shared_expert.{tt}")
        out[name] = value
    for l in range(dims["dense_layers"], dims["layers"]):
        p = f"model.layers.{l}.mlp.experts."
        get = lambda w: [canonical[f"{p}{e}.{w}.weight"] for e in range(E)]
        if source_format == "hf-fused":
            out[p + "gate_up_proj"] = np.stack(
                [np.concatenate([g, u]) for g, u in zip(get("gate_proj"), get("up_proj"))])
            out[p + "down_proj"] = np.stack(get("down_proj"))
        elif source_format == "torchtitan":
            for hf, tt in _TITAN.items():
                out[p + tt] = np.stack(get(hf))
        else:
            raise ValueError(source_format)
    return out


def expected_vllm(c, dims=DIMS):
    """The vllm target: full tensors in vLLM's names (numpy arrays of the destination dtypes)."""
    out = {}

    def fp8(name, *sources):
        q, s = quantize_fp8(np.concatenate([c[x] for x in sources]))
        out[name], out[name + "_scale_inv"] = q, s

    for name in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        out[name] = cast(c[name], "bfloat16")
    for l in range(dims["layers"]):
        p = f"model.layers.{l}."
        a = p + "self_attn."
        for n in ("input_layernorm.weight", "post_attention_layernorm.weight",
                  "self_attn.q_a_layernorm.weight", "self_attn.kv_a_layernorm.weight",
                  "self_attn.indexer.weights_proj.weight"):
            out[p + n] = cast(c[p + n], "bfloat16")
        fp8(a + "fused_qkv_a_proj.weight", a + "q_a_proj.weight", a + "kv_a_proj_with_mqa.weight")
        for n in ("q_b_proj", "kv_b_proj", "o_proj", "indexer.wq_b", "indexer.wk"):
            fp8(a + n + ".weight", a + n + ".weight")
        for n in ("indexer.k_norm.weight", "indexer.k_norm.bias"):
            out[a + n] = cast(c[a + n], "float32")
        m = p + "mlp."
        if l < dims["dense_layers"]:
            fp8(m + "gate_up_proj.weight", m + "gate_proj.weight", m + "up_proj.weight")
            fp8(m + "down_proj.weight", m + "down_proj.weight")
            continue
        out[m + "gate.weight"] = cast(c[m + "gate.weight"], "bfloat16")
        out[m + "gate.e_score_correction_bias"] = cast(c[m + "gate.e_score_correction_bias"], "float32")
        fp8(m + "shared_experts.gate_up_proj.weight", m + "shared_experts.gate_proj.weight",
            m + "shared_experts.up_proj.weight")
        fp8(m + "shared_experts.down_proj.weight", m + "shared_experts.down_proj.weight")
        E = range(dims["experts"])
        q, s = quantize_stack([np.concatenate([c[f"{m}experts.{e}.gate_proj.weight"],
                                               c[f"{m}experts.{e}.up_proj.weight"]]) for e in E])
        out[m + "experts.w13_weight"], out[m + "experts.w13_weight_scale_inv"] = q, s
        q, s = quantize_stack([c[f"{m}experts.{e}.down_proj.weight"] for e in E])
        out[m + "experts.w2_weight"], out[m + "experts.w2_weight_scale_inv"] = q, s
    return out


_HF_FP8_UNQUANTIZED = {"bfloat16": ("layernorm.weight", "norm.weight", "embed_tokens.weight",
                                    "lm_head.weight", "mlp.gate.weight", "weights_proj.weight"),
                       "float32": ("e_score_correction_bias", "k_norm.weight", "k_norm.bias")}


def expected_hf_fp8(c, dims=DIMS):
    """The hf-fp8 target: every linear weight FP8 per tensor (per expert), the rest cast."""
    out = {}
    for name, value in c.items():
        if name.endswith(_HF_FP8_UNQUANTIZED["float32"]):
            out[name] = cast(value, "float32")
        elif name.endswith(_HF_FP8_UNQUANTIZED["bfloat16"]):
            out[name] = cast(value, "bfloat16")
        else:
            out[name], out[name + "_scale_inv"] = quantize_fp8(value)
    return out
