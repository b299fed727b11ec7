"""An inference rank over a Hugging Face transformers model held in fine-grained FP8.

A transformers 5 model loaded with ``FineGrainedFP8Config(weight_block_size=(128, 128))`` keeps
its linear weights as float8_e4m3fn parameters with float32 ``weight_scale_inv`` blocks, and each
MoE layer's experts as one stacked FP8 module (``experts.gate_up_proj`` [E, 2I, H]). The target
format ``transformers-fp8`` of the model specs (models/*.json) names exactly those tensors, so
``destinations_from_model(model, plan, rank)`` can hand the model's own parameter memory to an
InferenceAgent: trainers then write converted bytes straight into the weights the model computes
with. Nothing is copied or cast; a parameter that does not match the plan is an error naming it.

transformers leaves a weight in bf16 when it quantizes on the fly and the weight's shape is not a
multiple of the block (e.g. DeepSeek-V3's and GLM-5's kv_a_proj_with_mqa, 576 rows), while a
pre-quantized checkpoint holds it in FP8 with partial blocks; ``quantize_skipped_linears`` turns
the first kind of model into the second, which is what ``transformers-fp8`` describes.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from ._destinations import planned_destinations
from .agents import Hook, InferenceAgent
from .convert import convert_tensors
from .plan import JobPlan
from .torch import _plan_options, _renamed

Rename = Callable[[str], Optional[str]]
TARGET_FORMAT = "transformers-fp8"


def _fp8_linear_type():
    """transformers' FP8Linear class, or None when transformers (or its FP8 module) is absent."""
    try:
        from transformers.integrations.finegrained_fp8 import FP8Linear
        return FP8Linear
    except ImportError:
        return None


def _named_tensors(model: Any) -> Dict[str, Any]:
    """Parameters and buffers by name (buffers too: e_score_correction_bias is one)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, not {type(model).__name__}")
    tensors = dict(model.named_buffers())
    tensors.update(model.named_parameters())
    return tensors


def _skipped_linear(model: Any, name: str) -> bool:
    """Whether `name` (a weight or its scale) belongs to an FP8Linear that transformers left in
    bf16: it does so when it quantizes on the fly and the shape is not a multiple of the block."""
    fp8_linear = _fp8_linear_type()
    try:
        module = model.get_submodule(name.rsplit(".", 1)[0])
    except AttributeError:
        return False
    return (fp8_linear is not None and isinstance(module, fp8_linear)
            and module.weight.element_size() > 1)


def _check(name: str, tensor: Any, spec, rank: int, device: Optional[torch.device],
           model: Any) -> torch.Tensor:
    where = f"inference rank {rank}: tensor {name}"
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{where}: expected a torch tensor, not {type(tensor).__name__}")
    if hasattr(tensor, "to_local"):
        raise TypeError(f"{where}: is a DTensor; register each process's local tensors (a "
                        "transformers model sharded with tp_plan is not supported)")
    t = tensor.detach()
    if _skipped_linear(model, name):
        raise TypeError(f"{where}: transformers left this FP8Linear in bf16 (it does so when it "
                        "quantizes on the fly and the shape is not a multiple of the block); "
                        "call weightsync.transformers.quantize_skipped_linears(model, spec) first")
    dtype = str(t.dtype).replace("torch.", "")
    if dtype != spec.dtype:
        raise TypeError(f"{where}: dtype {dtype}, the plan ({TARGET_FORMAT}) expects {spec.dtype}")
    if tuple(t.shape) != spec.shape:
        raise ValueError(f"{where}: shape {list(t.shape)}, the plan expects {list(spec.shape)} "
                         "(the plan's config/preset must describe this model, at tp=1)")
    if t.device.type == "meta":
        raise ValueError(f"{where}: on the meta device (not materialised); load the model's "
                         "weights first")
    if device is not None and t.device != device:
        raise ValueError(f"{where}: on {t.device}, the other destinations are on {device}; "
                         "one inference rank writes one device")
    if not t.is_contiguous():
        raise ValueError(f"{where}: not contiguous (strides {list(t.stride())}); not copied, "
                         "since the model would not see what is written into a copy")
    return t


def destinations_from_model(model: Any, plan: JobPlan, rank: int = 0,
                            rename: Optional[Rename] = None) -> Dict[str, torch.Tensor]:
    """Inference `rank`'s destinations (plan.inference_destinations) as the model's own
    parameter and buffer tensors (no copies). The plan's target format must be
    "transformers-fp8" (it is not checked here: the names would not match otherwise).

    `rename(name)` maps a model name to the plan's, or drops the tensor with None (e.g. an MTP
    layer the trainers do not push). Refused, naming the rank and tensor: a planned tensor the
    model lacks, a model parameter the plan does not write (it would silently keep old weights),
    a wrong dtype (with the fix when transformers left an FP8Linear in bf16), a wrong shape, the
    meta device, tensors on different devices, a non-contiguous tensor."""
    params = dict(model.named_parameters()) if isinstance(model, torch.nn.Module) else {}
    by_name = _renamed([_named_tensors(model)], rename, f"inference rank {rank}")
    # Buffers the plan does not name (rotary inv_freq) are computed, not weights; parameters are.
    return planned_destinations(
        plan.inference_destinations(rank), by_name, params, rank, "model",
        "pass rename= to drop them if they are not trained",
        lambda spec, _, tensor, device: _check(spec.name, tensor, spec, rank, device, model))


def inference_agent(model: Any, options: Mapping[str, Any], rank: int = 0,
                    rename: Optional[Rename] = None, pause: Optional[Hook] = None,
                    post_update: Optional[Hook] = None,
                    resume: Optional[Hook] = None) -> InferenceAgent:
    """An InferenceAgent whose destinations are `model`'s own tensors (destinations_from_model).
    The model must not be reallocated (no .to(), no reloading) while the agent lives; run it
    only between pushes (pause/resume hooks). The destinations are kept as
    ``agent.destinations``."""
    with JobPlan(_plan_options(options)) as plan:
        destinations = destinations_from_model(model, plan, rank, rename)
    agent = InferenceAgent(options, rank, destinations, pause=pause, post_update=post_update,
                           resume=resume)
    agent.destinations = destinations
    return agent


def quantize_skipped_linears(model: Any, spec: str) -> List[str]:
    """Quantizes, with weightsync's reference (docs/conversion-numerics.md), every FP8Linear
    whose weight transformers left in bf16, replacing its weight by float8_e4m3fn and its
    weight_scale_inv by the float32 block scales: the layout a pre-quantized checkpoint loads
    into, which the "transformers-fp8" target format describes. `spec` is the model spec
    (glm_moe_dsa, deepseek_v3, ...). Returns the names of the weights it quantized."""
    fp8_linear = _fp8_linear_type()
    if fp8_linear is None:
        raise ImportError("quantize_skipped_linears needs transformers with finegrained_fp8")
    done = []
    for module_name, module in model.named_modules():
        if not isinstance(module, fp8_linear) or module.weight.element_size() == 1:
            continue
        if module.block_size is None or tuple(module.block_size) != (128, 128):
            raise ValueError(f"{module_name}: block size {module.block_size}; weightsync "
                             "quantizes 128x128 blocks only")
        name = f"{module_name}.weight"
        weight = module.weight.detach()
        converted = convert_tensors(spec, "hf", TARGET_FORMAT, {name: weight.cpu()},
                                    partial=True, like="torch")
        device = weight.device
        module.weight = torch.nn.Parameter(converted[name].to(device), requires_grad=False)
        module.weight_scale_inv = torch.nn.Parameter(
            converted[name + "_scale_inv"].to(device), requires_grad=False)
        done.append(name)
    return done


__all__ = ["TARGET_FORMAT", "destinations_from_model", "inference_agent",
           "quantize_skipped_linears"]
