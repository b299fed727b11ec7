"""Tiny GLM-5-shaped transformers models, and what transformers' own on-the-fly FP8 quantization
makes of them, for tests/python/test_transformers.py (CPU) and tests/gpu/hf_fp8_push.py (GPU).

`quantize_like_from_pretrained` follows what from_pretrained(..., quantization_config=
FineGrainedFP8Config(weight_block_size=(128, 128))) does with a bf16 checkpoint, with transformers'
own pieces: the quantizer's module replacement (FP8Linear, FP8Experts; lm_head and
_keep_in_fp32_modules skipped) on the meta device, then its Fp8Quantize op on every tensor the
quantizer says needs quantizing, and the plain value for the others. It is what transformers'
quantizer makes of the bf16 weights. from_pretrained itself differs in one step: it first casts
each checkpoint tensor to the FP8 parameter's dtype (a plain cast without scale) and quantizes
that (test_transformers.py's last test shows it); the GPU script measures both.
"""
import torch
from transformers import GlmMoeDsaConfig, GlmMoeDsaForCausalLM
from transformers.integrations.finegrained_fp8 import Fp8Quantize
from transformers.quantizers.quantizer_finegrained_fp8 import FineGrainedFP8HfQuantizer
from transformers.utils.quantization_config import FineGrainedFP8Config

# Every FP8 linear dimension a multiple of 128 (so transformers quantizes all of them on the fly):
# kv_a_proj_with_mqa has kv_lora + rope rows, kv_b_proj kv_lora columns, so both are 128.
ALIGNED = dict(hidden_size=256, vocab_size=512, num_hidden_layers=3, first_k_dense_replace=1,
               intermediate_size=256, moe_intermediate_size=128, n_routed_experts=4,
               n_shared_experts=1, num_experts_per_tok=2, n_group=1, topk_group=1,
               num_attention_heads=2, num_key_value_heads=2, q_lora_rank=128, kv_lora_rank=128,
               qk_rope_head_dim=128, qk_nope_head_dim=128, v_head_dim=128, index_n_heads=2,
               index_head_dim=128, index_topk=16, tie_word_embeddings=False,
               max_position_embeddings=256)
# GLM-5's own partial shape: kv_a_proj_with_mqa is [kv_lora + 64, hidden] = [576, 6144] there.
PARTIAL = dict(ALIGNED, kv_lora_rank=128, qk_rope_head_dim=64, index_head_dim=128)


def glm_config(**dims) -> GlmMoeDsaConfig:
    return GlmMoeDsaConfig(**dims)


def _in_bf16(model):
    """The model in bf16 as from_pretrained(dtype=torch.bfloat16) holds it: the router bias
    (_keep_in_fp32_modules_strict) stays float32."""
    model.to(torch.bfloat16)
    for module in model.modules():
        if "e_score_correction_bias" in module._buffers:
            module._buffers["e_score_correction_bias"] = module.e_score_correction_bias.float()
    return model


def bf16_model(config: GlmMoeDsaConfig, seed: int, device="cpu") -> GlmMoeDsaForCausalLM:
    """The architecture's own class in bf16, with seeded weights of about the scale training
    gives (normal, std 0.02 on matrices; norms near 1; a router bias)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = _in_bf16(GlmMoeDsaForCausalLM(config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            else:
                p.normal_(1.0, 0.05)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(torch.randn(b.shape) * 0.01)
    return model.eval()


def fp8_quantizer() -> FineGrainedFP8HfQuantizer:
    return FineGrainedFP8HfQuantizer(FineGrainedFP8Config(weight_block_size=(128, 128)),
                                     pre_quantized=False)


def _assign(model, name, value):
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._buffers:
        module._buffers[attr] = value
    else:
        setattr(module, attr, torch.nn.Parameter(value, requires_grad=False))


def quantize_like_from_pretrained(source: GlmMoeDsaForCausalLM) -> GlmMoeDsaForCausalLM:
    """`source`'s weights as from_pretrained with FineGrainedFP8Config would hold them."""
    quantizer = fp8_quantizer()
    with torch.device("meta"):
        model = _in_bf16(type(source)(source.config))
    quantizer._process_model_before_weight_loading(model)
    quantize = Fp8Quantize(quantizer)
    tensors = dict(source.named_buffers())
    tensors.update(source.named_parameters())
    for name, value in tensors.items():
        value = value.detach().clone()
        if quantizer.param_needs_quantization(model, name):
            for key, out in quantize.convert({name: value}).items():
                _assign(model, key, out)
        else:
            _assign(model, name, value)
    return model.eval()
