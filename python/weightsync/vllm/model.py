"""A vLLM worker's model as an inference rank's destinations: its own parameter tensors, named as
the model spec's ``vllm`` target format names them, checked against the job's plan.

Read from vLLM 0.34.0 (vllm/model_executor/models/deepseek_v2.py and llama.py, layers/linear.py,
layers/fused_moe/routed_experts.py, layers/quantization/fp8.py): FP8 block-quantized linears
register ``weight`` (float8_e4m3fn) and ``weight_scale_inv`` (float32 blocks), the MoE layer keeps
its expert stacks in ``mlp.experts.routed_experts.w13_weight`` / ``w2_weight`` (and their
``_scale_inv``), and attention layers register scalar KV-cache quantization scales
(``attn.k_scale`` ...) that come from the checkpoint, not from training.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional

import torch

from .._destinations import planned_destinations
from ..plan import JobPlan

# vLLM 0.34's MoE layer holds its experts one module deeper than the spec names them.
_RENAMES = ((".mlp.experts.routed_experts.", ".mlp.experts."),)
# Parameters vLLM registers that no trainer produces: per-layer scalar KV-cache and attention
# quantization scales (loaded from a checkpoint that has them, else 1.0).
_NOT_TRAINED = re.compile(r"\.attn\.(k|v|q|prob)_scale$")


def spec_name(name: str) -> str:
    """The model spec's name for vLLM parameter `name`."""
    for theirs, ours in _RENAMES:
        name = name.replace(theirs, ours)
    return name


def _named_parameters(model: torch.nn.Module, ignore: Iterable[str]) -> Dict[str, Any]:
    """Spec name -> (vLLM name, tensor) of the parameters trainers write."""
    patterns = [re.compile(p) for p in ignore]
    out: Dict[str, Any] = {}
    for name, param in model.named_parameters():
        if _NOT_TRAINED.search(name) or any(p.fullmatch(name) for p in patterns):
            continue
        out[spec_name(name)] = (name, param)
    return out


def _checked(where: str, tensor: torch.Tensor, spec, device: Optional[torch.device]):
    t = tensor.detach()
    dtype = str(t.dtype).replace("torch.", "")
    if dtype != spec.dtype or tuple(t.shape) != spec.shape:
        raise ValueError(f"{where}: vLLM holds {dtype} {list(t.shape)}, the plan writes "
                         f"{spec.dtype} {list(spec.shape)} (the options' config, inference "
                         "parallelism or quantization do not describe this engine, or a kernel "
                         "backend repacked the weight after loading)")
    if t.device.type == "meta":
        raise ValueError(f"{where}: on the meta device (the worker has not loaded its weights)")
    if device is not None and t.device != device:
        raise ValueError(f"{where}: on {t.device}, the other tensors are on {device}")
    if not t.is_contiguous():
        raise ValueError(f"{where}: not contiguous (strides {list(t.stride())}); the kernels "
                         "would not read what is written into a copy")
    return t


def destinations_from_vllm_model(model: torch.nn.Module, plan: JobPlan, rank: int,
                                 ignore: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
    """Inference `rank`'s destinations as the model's own parameters (no copies), by spec name.

    `ignore` holds regular expressions (full match) of vLLM parameter names the trainers do not
    push, e.g. an MTP layer. Refused, naming rank and tensor: a planned tensor the model lacks, a
    model parameter the plan does not write (it would keep stale weights), a wrong dtype or shape,
    the meta device, two devices, a non-contiguous tensor."""
    by_name = _named_parameters(model, ignore)
    return planned_destinations(
        plan.inference_destinations(rank), by_name, {original for original, _ in by_name.values()},
        rank, "vLLM model", "list them in the init info's \"ignore\" if the trainers do not "
        "train them",
        lambda spec, original, tensor, device: _checked(
            f"inference rank {rank}: tensor {original}", tensor, spec, device))


def expert_map_of(model: torch.nn.Module) -> Optional[List[int]]:
    """The global expert ids this worker holds, in local order, from vLLM's expert map (the same
    for every MoE layer); None without expert parallelism. weightsync's agent checks it against
    the plan's placement."""
    maps = {}
    for name, module in model.named_modules():
        manager = getattr(module, "expert_map_manager", None)
        if manager is None or manager.expert_map is None:
            continue
        global_to_local = manager.expert_map.tolist()
        local = sorted((l, g) for g, l in enumerate(global_to_local) if l >= 0)
        maps[name] = [g for _, g in local]
    if not maps:
        return None
    first_name, first = next(iter(maps.items()))
    for name, held in maps.items():
        if held != first:
            raise ValueError(f"{name} holds experts {held}, {first_name} holds {first}: "
                             "weightsync places every MoE layer's experts alike")
    return first


def worker_rank(vllm_config: Any) -> int:
    """This worker's rank among the engine's workers, data-parallel replicas included (vLLM's
    own indexing of per-worker update infos: data_parallel_index * world_size + rank)."""
    from vllm.distributed import get_tensor_model_parallel_rank
    parallel = vllm_config.parallel_config
    if parallel.pipeline_parallel_size > 1:
        raise ValueError(f"pipeline parallel size {parallel.pipeline_parallel_size}: weightsync "
                         "plans tensor, data and expert parallel engines only")
    return parallel.data_parallel_index * parallel.world_size + get_tensor_model_parallel_rank()


__all__ = ["destinations_from_vllm_model", "expert_map_of", "spec_name", "worker_rank"]
