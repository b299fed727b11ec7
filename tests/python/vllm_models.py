"""vLLM's own model classes (vLLM 0.34.0), built on the CPU for tiny configs, as a vLLM worker
builds them before loading weights: the parameters test_vllm.py pushes into.

What it takes on a CPU-only host, and why:
- VLLM_TARGET_DEVICE=cpu selects vLLM's CPU platform; CUDA_VISIBLE_DEVICES="" lets vLLM accept
  PyPI's triton, which has no CPU driver (vllm/triton_utils/importing.py).
- vLLM picks the FP8 block GEMM kernel when a linear layer registers its parameters. Its CPU kernel
  (CPUFp8BlockScaledMMKernel) needs AMX and the CPU build's own ops, which the PyPI (CUDA) wheel
  lacks; `allow_fp8_kernel_choice` lets vLLM choose it anyway. Only the choice is affected: the
  parameters are registered by vLLM's Fp8LinearMethod.create_weights as on any platform, and
  process_weights_after_loading (where a kernel may repack weights) is never run here, so the
  layouts checked are the loaders' (`weight` [N, K] float8_e4m3fn, `weight_scale_inv` [N/128,
  K/128] float32), not whatever a GPU kernel backend makes of them.
- GLM-5 (GlmMoeDsaForCausalLM) does not build on vLLM's CPU platform: its DSA indexer needs sparse
  attention ("Sparse Attention is not supported on CPU", vllm/platforms/cpu.py).
"""
import os
import socket
import tempfile

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402

FP8_BLOCKS = {"quant_method": "fp8", "weight_block_size": [128, 128],
              "activation_scheme": "dynamic", "fmt": "e4m3"}
# Every FP8 dimension a whole number of 128-blocks except where noted, 2 layers.
LLAMA = dict(vocab_size=512, hidden_size=256, intermediate_size=384, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
             architectures=["LlamaForCausalLM"])
# DeepSeek-V3's MLA and MoE (GLM-5's base classes in vLLM): 1 dense + 1 MoE layer, 4 experts,
# kv_a_proj_with_mqa 128 + 64 rows (fused with q_a_proj: a partial 128-block).
DEEPSEEK_V3 = dict(vocab_size=512, hidden_size=256, intermediate_size=384,
                   moe_intermediate_size=128, num_hidden_layers=2, first_k_dense_replace=1,
                   n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, n_group=1,
                   topk_group=1, topk_method="noaux_tc", num_attention_heads=4,
                   num_key_value_heads=4, q_lora_rank=256, kv_lora_rank=128,
                   qk_nope_head_dim=64, qk_rope_head_dim=64, v_head_dim=64,
                   max_position_embeddings=1024, architectures=["DeepseekV3ForCausalLM"])


def allow_fp8_kernel_choice():
    from vllm.model_executor.kernels.linear import CPUFp8BlockScaledMMKernel
    CPUFp8BlockScaledMMKernel.is_supported = classmethod(lambda cls, cc=None: (True, None))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_distributed = False


def _init_distributed():
    """vLLM's process groups for one worker (tp = pp = 1), as a worker has them for the current
    vLLM config (the expert-parallel group exists only for MoE models, so rebuilt per model)."""
    global _distributed
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    from vllm.distributed.parallel_state import destroy_model_parallel
    if not _distributed:
        init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                     distributed_init_method=f"tcp://127.0.0.1:{free_port()}")
        _distributed = True
    destroy_model_parallel()
    initialize_model_parallel(1, 1)


def write_config(config_class, dims, quantized=True):
    """A model directory holding only config.json; returns its path."""
    config = config_class(**dims)
    if quantized:
        config.quantization_config = FP8_BLOCKS
    path = tempfile.mkdtemp(prefix="weightsync-vllm-")
    config.save_pretrained(path)
    return path


def build(model_dir):
    """(vllm_config, model): vLLM's model class for `model_dir`, built as its loader builds it
    (the model's dtype as default dtype), on the CPU, before weights are loaded."""
    allow_fp8_kernel_choice()
    from vllm.config import ModelConfig, VllmConfig, set_current_vllm_config
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.utils.torch_utils import set_default_torch_dtype
    model_config = ModelConfig(model=model_dir, skip_tokenizer_init=True, dtype="bfloat16",
                               max_model_len=256, enforce_eager=True)
    vllm_config = VllmConfig(model_config=model_config)
    with set_current_vllm_config(vllm_config):
        _init_distributed()
        with set_default_torch_dtype(torch.bfloat16), torch.device("cpu"):
            model = initialize_model(vllm_config=vllm_config)
    return vllm_config, model
