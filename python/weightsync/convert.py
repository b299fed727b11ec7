"""In-memory conversion: the bytes `weightsync convert` writes, from arrays, into arrays (CPU)."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, List, Mapping

from . import _lib
from ._tensors import Described, TensorSpec, allocate, specs_of
from .errors import check

PARTIAL = 1  # WS_CONVERT_PARTIAL


class ConvertPlan:
    """A conversion planned from source descriptions (arrays or TensorSpecs): which destinations
    it writes (``destinations``), reusable for many ``convert`` calls of same-shaped sources."""

    def __init__(self, model: str, source_format: str, target_format: str,
                 sources: Mapping[str, Any], partial: bool = False):
        lib = _lib.lib()
        described = Described(sources, need_data=False)
        handle = ctypes.c_void_p()
        check(lib.ws_convert_plan_create(model.encode(), source_format.encode(),
                                         target_format.encode(), described.array,
                                         described.count, PARTIAL if partial else 0,
                                         ctypes.byref(handle)))
        self._handle = handle
        out = ctypes.c_void_p()
        check(lib.ws_convert_plan_destinations(handle, ctypes.byref(out)))
        self.destinations: List[TensorSpec] = specs_of(lib, out)

    def convert(self, sources: Mapping[str, Any], destinations: Mapping[str, Any],
                threads: int = 0) -> None:
        """Converts `sources` (the planned tensors) into `destinations` (every planned one,
        contiguous CPU memory). threads 0: the convert.threads setting."""
        src = Described(sources)
        dst = Described(destinations, writable=True)
        check(_lib.lib().ws_convert_tensors(self._handle, src.array, src.count, dst.array,
                                            dst.count, threads))

    def close(self) -> None:
        if getattr(self, "_handle", None):
            _lib.lib().ws_convert_plan_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "ConvertPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def convert_tensors(model: str, source_format: str, target_format: str,
                    tensors: Mapping[str, Any], *, partial: bool = False, threads: int = 0,
                    like: str = "numpy") -> Dict[str, Any]:
    """Converts a dict of source tensors (numpy arrays or CPU torch tensors) of model spec `model`
    from `source_format` into `target_format`, returning the destination tensors by name
    (numpy arrays, bf16/FP8 as ml_dtypes; like="torch" for torch tensors). `partial`: the sources
    are part of a model (a few layers)."""
    with ConvertPlan(model, source_format, target_format, tensors, partial) as plan:
        out = allocate(plan.destinations, like=like)
        plan.convert(tensors, out, threads)
    return {k: getattr(v, "array", v) for k, v in out.items()}
