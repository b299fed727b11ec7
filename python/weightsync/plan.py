"""Job plans (what each rank of a job holds) and the options every agent takes."""
from __future__ import annotations

import ctypes
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import _lib
from ._tensors import TensorSpec, specs_of
from .errors import check


def options_json(options: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> bytes:
    """WS_OPTIONS (docs/c-api.md) as JSON: a mapping and/or keywords, keywords winning.
    e.g. ``options_json(preset="glm5_tiny", source_format="hf", trainer="fsdp=2")``."""
    merged: Dict[str, Any] = dict(options or {})
    merged.update(kwargs)
    return json.dumps(merged).encode("utf-8")


class JobPlan:
    """The transfer plan every rank of a job computes from the same options: its hash, the world
    sizes, and the tensors each trainer rank passes and each inference rank registers."""

    def __init__(self, options: Optional[Mapping[str, Any]] = None, **kwargs: Any):
        lib = _lib.lib()
        handle = ctypes.c_void_p()
        check(lib.ws_job_plan_create(options_json(options, **kwargs), ctypes.byref(handle)))
        self._handle = handle
        self.hash: str = lib.ws_job_plan_hash(handle).decode()
        self.trainer_world: int = lib.ws_job_plan_trainer_world(handle)
        self.inference_world: int = lib.ws_job_plan_inference_world(handle)

    def trainer_sources(self, rank: int) -> List[TensorSpec]:
        """The source shards trainer `rank` holds (local shapes, the source format's names)."""
        lib = _lib.lib()
        out = ctypes.c_void_p()
        check(lib.ws_job_plan_trainer_sources(self._handle, rank, ctypes.byref(out)))
        return specs_of(lib, out)

    def trainer_source_rows(self, rank: int) -> Dict[str, Tuple[int, int]]:
        """name -> (first, total): trainer `rank`'s shard of that source is [first, first + its
        dim 0) of the full tensor's `total` along dim 0 (rows, or the experts of a [E, rows,
        cols] stack). Ranks follow torchtitan's order, so with expert parallelism the shards of
        a stack are not in rank order."""
        lib = _lib.lib()
        specs = self.trainer_sources(rank)
        first = (ctypes.c_int64 * max(len(specs), 1))()
        total = (ctypes.c_int64 * max(len(specs), 1))()
        check(lib.ws_job_plan_trainer_source_rows(self._handle, rank, first, total, len(specs)))
        return {s.name: (first[i], total[i]) for i, s in enumerate(specs)}

    def inference_destinations(self, rank: int) -> List[TensorSpec]:
        """The destination tensors (weights and FP8 scales) inference `rank` registers."""
        lib = _lib.lib()
        out = ctypes.c_void_p()
        check(lib.ws_job_plan_inference_destinations(self._handle, rank, ctypes.byref(out)))
        return specs_of(lib, out)

    def close(self) -> None:
        if getattr(self, "_handle", None):
            _lib.lib().ws_job_plan_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "JobPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
