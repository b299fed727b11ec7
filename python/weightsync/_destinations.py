"""An inference rank's destinations as an engine's own tensors: the walk every engine integration
(weightsync.transformers, weightsync.vllm) shares, with its own name mapping and tensor checks."""
from __future__ import annotations

from typing import Any, Callable, Collection, Dict, Mapping, Optional, Sequence, Tuple


def planned_destinations(specs: Sequence[Any], by_name: Mapping[str, Tuple[str, Any]],
                         weights: Collection[str], rank: int, engine: str, drop_hint: str,
                         check: Callable[[Any, str, Any, Optional[Any]], Any]) -> Dict[str, Any]:
    """Plan name -> checked tensor for every spec of `specs` (plan.inference_destinations).

    `by_name` maps plan names to (the engine's name, tensor); `weights` are the engine's names of
    trained weights, each of which the plan must write (else it would keep stale values: the
    error ends with `drop_hint`). `check(spec, engine name, tensor, device of the previous
    destinations)` returns the tensor to register or raises naming it."""
    planned = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in by_name]
    if missing:
        raise ValueError(f"inference rank {rank}: {len(missing)} planned tensor(s) not in the "
                         f"{engine}, e.g. {', '.join(missing[:5])}")
    extra = sorted(original for name, (original, _) in by_name.items()
                   if name not in planned and original in weights)
    if extra:
        raise ValueError(f"inference rank {rank}: {len(extra)} {engine} parameter(s) the plan "
                         f"does not write, e.g. {', '.join(extra[:5])}; {drop_hint}")
    out: Dict[str, Any] = {}
    device = None
    for spec in specs:
        original, tensor = by_name[spec.name]
        out[spec.name] = check(spec, original, tensor, device)
        device = out[spec.name].device
    return out
