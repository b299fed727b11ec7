"""A trainer rank's source tensors from a PyTorch model, and a TrainerAgent over them.

``sources_from_module(model, plan, rank)`` returns, for every tensor the plan says trainer `rank`
passes, a view of the model's own memory: a plain (unsharded) parameter is cut to the dim-0 rows
the plan gives the rank (torch.chunk semantics in torchtitan's rank order, as FSDP2 and expert
parallelism shard), a DTensor (FSDP2, torchtitan's expert parallel) gives its local shard once
torch's own geometry of it matches those rows. Nothing is
ever copied or cast: the agent reads these tensors at every push, so a copy would push the weights
of the moment it was made. Hence a wrong dtype or a non-contiguous tensor is an error, not a fix.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch

from .agents import TrainerAgent
from .plan import JobPlan

Rename = Callable[[str], Optional[str]]


def _named_tensors(model: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(parameters, buffers) of a module, or (the mapping, {}) for a dict of tensors."""
    if isinstance(model, torch.nn.Module):
        return dict(model.named_parameters()), dict(model.named_buffers())
    if isinstance(model, Mapping):
        return dict(model), {}
    raise TypeError(f"expected a torch.nn.Module or a mapping of name to tensor, "
                    f"not {type(model).__name__}")


def _renamed(groups, rename: Optional[Callable[[str], Optional[str]]],
             who: str) -> Dict[str, Tuple[str, Any]]:
    """Plan name -> (original name, tensor) over `groups` of named tensors; `rename` maps a
    module's name to the plan's (None: skip it). Two tensors on one plan name are refused."""
    rename = rename or (lambda n: n)
    by_name: Dict[str, Tuple[str, Any]] = {}
    for group in groups:
        for original, tensor in group.items():
            name = rename(original)
            if name is None:
                continue
            if name in by_name:
                raise ValueError(f"{who}: {by_name[name][0]} and {original} are both named {name}")
            by_name[name] = (original, tensor)
    return by_name


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor  # torch 2.5+
        return DTensor
    except ImportError:
        pass
    try:
        from torch.distributed._tensor import DTensor  # torch 2.4
        return DTensor
    except ImportError:  # torch built without distributed: no DTensors can exist
        return None


def _shard_geometry():
    """torch's own (local shape, global offset) of a DTensor shard on this rank, which knows
    every placement (_StridedShard included). Private in every torch so far: its path moved
    from torch.distributed._tensor (2.4) to torch.distributed.tensor (2.5+)."""
    try:
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    except ImportError:
        from torch.distributed._tensor._utils import compute_local_shape_and_global_offset
    return compute_local_shape_and_global_offset


def _dtensor_local(where: str, tensor: Any, spec, first: int, total: int):
    """A DTensor's local shard, checked to be the dim-0 rows [first, first + spec rows) of
    `total` the plan gives this rank. Any placements qualify (FSDP2's Shard(0), torchtitan's
    expert-parallel _StridedShard(0) + Shard(0) on its (efsdp, ep) mesh, HSDP's Replicate) when
    the local shard is one run of whole rows: the rows are computed from the DTensor's mesh and
    placements, not from its local shape alone, so a split that has the right shape but other
    rows (a different rank order) is refused too."""
    placements = tuple(tensor.placements)
    if any(p.is_partial() for p in placements):
        raise ValueError(f"{where}: DTensor placements {placements} hold partial sums, "
                         "not the weights")
    global_shape = tuple(tensor.shape)
    local_shape, offset = _shard_geometry()(tensor.shape, tensor.device_mesh, placements)
    local_shape, offset = tuple(local_shape), tuple(offset)
    if not global_shape or global_shape[0] != total:
        raise ValueError(f"{where}: global shape {list(global_shape)} does not fit the plan, "
                         f"whose tensor has {total} along dim 0 and whose shard for this rank "
                         f"is {list(spec.shape)}")
    plan_rows = (first, first + spec.shape[0])
    whole_rows = local_shape[1:] == global_shape[1:] and not any(offset[1:])
    held = (offset[0], offset[0] + local_shape[0]) if whole_rows else None
    if held != plan_rows or local_shape[1:] != tuple(spec.shape[1:]):
        has = (f"rows [{held[0]}, {held[1]})" if held else
               f"a block of shape {list(local_shape)} at offset {list(offset)}")
        raise ValueError(f"{where}: the DTensor's local shard (placements {placements}, mesh "
                         f"{tensor.device_mesh.mesh.tolist()}) holds {has} of global shape "
                         f"{list(global_shape)}; the plan gives this rank rows "
                         f"[{plan_rows[0]}, {plan_rows[1]}) (shape {list(spec.shape)}); the "
                         "plan's trainer parallelism and rank order must match the mesh")
    return tensor.to_local()


def _local_shard(name: str, tensor: Any, spec, first: int, total: int, rank: int, dtensor):
    """The part of `tensor` trainer `rank` passes for `spec`, checked against it."""
    where = f"trainer rank {rank}: tensor {name}"
    if dtensor is not None and isinstance(tensor, dtensor):
        local = _dtensor_local(where, tensor, spec, first, total)
    elif isinstance(tensor, torch.Tensor):
        full = tuple(tensor.shape)
        if full[1:] != spec.shape[1:] or not full or full[0] != total:
            raise ValueError(f"{where}: shape {list(full)} does not fit the plan, whose tensor "
                             f"has {total} along dim 0 and whose shard for this rank is "
                             f"{list(spec.shape)}")
        local = tensor.detach()[first:first + spec.shape[0]]
    else:
        raise TypeError(f"{where}: expected a torch tensor, not {type(tensor).__name__}")
    local = local.detach()
    if str(local.dtype).replace("torch.", "") != spec.dtype:
        raise TypeError(f"{where}: dtype {local.dtype}, the plan expects {spec.dtype} "
                        "(not cast here: a cast copy would not follow training)")
    if not local.is_contiguous():
        raise ValueError(f"{where}: not contiguous (strides {list(local.stride())}); not copied "
                         "here since a copy would not follow training")
    return local


def sources_from_module(model: Any, plan: JobPlan, rank: int,
                        rename: Optional[Rename] = None) -> Dict[str, "torch.Tensor"]:
    """Trainer `rank`'s sources as the plan names and shapes them, as views of `model`'s memory.

    `model`: an nn.Module (its parameters, and those of its buffers the plan names) or a mapping
    of name to tensor. Names must be the plan's source format's (Hugging Face names for "hf").
    `rename(name)` maps a model name to the plan's, or returns None to leave the tensor out
    (e.g. strip torch.compile's "_orig_mod." or drop an MTP layer the plan does not carry).
    Every parameter must be used and every planned tensor found; errors name rank and tensor."""
    params, buffers = _named_tensors(model)
    by_name = _renamed((params, buffers), rename, f"trainer rank {rank}")
    specs = plan.trainer_sources(rank)
    # Every rank's plan lists every source of the model (its shard may be empty), with where the
    # shard lies in the full tensor: torchtitan's rank order, not a prefix sum over ranks.
    rows = plan.trainer_source_rows(rank)
    extra = sorted(by_name[n][0] for n in by_name
                   if n not in rows and by_name[n][0] in params)
    if extra:
        raise ValueError(f"trainer rank {rank}: {len(extra)} parameter(s) the plan does not know, "
                         f"e.g. {', '.join(extra[:5])}; pass rename= to map or drop them")
    missing = [s.name for s in specs if s.name not in by_name]
    if missing:
        raise ValueError(f"trainer rank {rank}: {len(missing)} planned tensor(s) not in the model, "
                         f"e.g. {', '.join(missing[:5])}")
    dtensor = _dtensor_type()
    out = {}
    for spec in specs:
        original, tensor = by_name[spec.name]
        first, total = rows[spec.name]
        out[spec.name] = _local_shard(spec.name, tensor, spec, first, total, rank, dtensor)
    return out


def _plan_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    # The store is the job's meeting point, not part of what the plan computes.
    return {k: v for k, v in options.items() if k not in ("store_address", "store_token")}


def default_rank() -> int:
    """This process's rank in torch.distributed, or 0 when it is not initialised."""
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def trainer_agent(model: Any, options: Mapping[str, Any], rank: Optional[int] = None,
                  rename: Optional[Rename] = None) -> TrainerAgent:
    """A TrainerAgent over `model`'s own memory (sources_from_module): after each optimizer step,
    ``agent.push(step)`` sends what the model holds. The model's parameters must not be
    reallocated while the agent lives (no .to(), no load_state_dict(assign=True)).
    `rank` defaults to torch.distributed's. The sources are kept as ``agent.sources``."""
    rank = default_rank() if rank is None else rank
    with JobPlan(_plan_options(options)) as plan:
        sources = sources_from_module(model, plan, rank, rename)
    agent = TrainerAgent(options, rank, sources)
    agent.sources = sources
    return agent


__all__ = ["default_rank", "sources_from_module", "trainer_agent"]
