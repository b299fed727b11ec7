"""weightsync: push freshly trained weights into running inference engines, converted on the way.

The package calls libweightsync.so through its C API (ctypes, no compiled extension), so one
build works with any CPython >= 3.9 and any PyTorch. See docs/python.md.
"""
from __future__ import annotations

from . import _lib
from ._tensors import TensorRef, TensorSpec, allocate, numpy_dtype
from .agents import InferenceAgent, LauncherRank, PushReport, TrainerAgent, launcher_rank
from .config import config_get, config_reset, config_set
from .convert import ConvertPlan, convert_tensors
from .errors import WeightsyncError
from .plan import JobPlan
from .store import Store

__all__ = ["ConvertPlan", "InferenceAgent", "JobPlan", "LauncherRank", "PushReport", "Store",
           "TensorRef", "TensorSpec", "TrainerAgent", "WeightsyncError", "allocate", "config_get",
           "config_reset", "config_set", "convert_tensors", "launcher_rank", "numpy_dtype",
           "version"]


def version() -> str:
    """The library's version ("0.1.0")."""
    return _lib.lib().ws_version().decode()


def __getattr__(name: str) -> str:
    # `weightsync.__version__`, read from the loaded library (the package and the library are one
    # build) only when asked, so importing the package never loads it.
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'weightsync' has no attribute {name!r}")
