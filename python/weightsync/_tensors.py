"""Numpy arrays and torch tensors as C ``ws_tensor`` descriptions, and back.

Arrays are passed by pointer: nothing is copied, so the caller's array must stay alive and
unchanged for as long as the C side uses it (the agent classes keep references for their lifetime).
Dtypes are spelt as PyTorch spells them ("bfloat16", "float8_e4m3fn"); numpy has no bf16 or FP8,
so those come from ml_dtypes, or from a plain uint16/uint8 array wrapped in ``TensorRef`` with the
dtype named explicitly.
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from ._lib import WsTensor

# ws_dtype values (include/weightsync/weightsync.h), by PyTorch name.
DTYPES = {"bool": 0, "uint8": 1, "int8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6,
          "int64": 7, "uint64": 8, "float16": 9, "bfloat16": 10, "float32": 11, "float64": 12,
          "float8_e4m3fn": 13, "float8_e5m2": 14, "float8_e8m0fnu": 15}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_ITEMSIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
             "int64": 8, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
             "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e8m0fnu": 1}
# The unsigned integer of the same width: how a dtype numpy lacks is stored without ml_dtypes.
_STORAGE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

try:
    import ml_dtypes
except ImportError:  # optional: TensorRef over uint arrays works without it
    ml_dtypes = None


def _torch():
    """torch if it is importable (optional; never imported just to check a numpy array)."""
    import sys
    return sys.modules.get("torch")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the library expects: its name, dtype (PyTorch spelling) and shape."""
    name: str
    dtype: str
    shape: Tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = _ITEMSIZE[self.dtype]
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class TensorRef:
    """A numpy array reinterpreted as another dtype of the same width, e.g. a uint16 array
    holding bf16 bits: ``TensorRef(bits, "bfloat16")``."""
    array: np.ndarray
    dtype: str

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r} (known: {', '.join(DTYPES)})")
        if self.array.dtype.itemsize != _ITEMSIZE[self.dtype]:
            raise ValueError(f"a {self.array.dtype} array ({self.array.dtype.itemsize} bytes per "
                             f"element) cannot hold {self.dtype}")


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype that holds `dtype`: itself, an ml_dtypes type, or unsigned storage."""
    if dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"):
        if ml_dtypes is not None and hasattr(ml_dtypes, dtype):
            return np.dtype(getattr(ml_dtypes, dtype))
        return np.dtype(_STORAGE[_ITEMSIZE[dtype]])
    return np.dtype(dtype)


def _numpy_dtype_name(array: np.ndarray, name: str) -> str:
    dt = array.dtype
    if dt.name in DTYPES:
        return dt.name
    if ml_dtypes is not None:  # ml_dtypes names match PyTorch's
        for candidate in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"):
            if hasattr(ml_dtypes, candidate) and dt == np.dtype(getattr(ml_dtypes, candidate)):
                return candidate
    raise TypeError(f"tensor {name}: numpy dtype {dt} has no weightsync dtype "
                    f"(known: {', '.join(DTYPES)})")


class Described:
    """ws_tensor structs for a set of named arrays, with the buffers they point to kept alive."""

    def __init__(self, tensors: Mapping[str, Any], need_data: bool = True,
                 allow_cuda: bool = False, writable: bool = False):
        self.writable = writable
        self.keepalive: List[Any] = []
        self.names: List[str] = []
        items = list(tensors.items())
        self.array = (WsTensor * max(len(items), 1))()
        for i, (name, value) in enumerate(items):
            if not isinstance(name, str):
                raise TypeError(f"tensor names must be str, not {type(name).__name__}")
            self.array[i] = self._describe(name, value, need_data, allow_cuda)
            self.names.append(name)
        self.count = len(items)

    def _describe(self, name: str, value: Any, need_data: bool, allow_cuda: bool) -> WsTensor:
        torch = _torch()
        if torch is not None and isinstance(value, torch.Tensor):
            return self._from_torch(name, value, allow_cuda)
        if isinstance(value, TensorSpec):
            if need_data:
                raise TypeError(f"tensor {name}: a TensorSpec has no data; pass an array")
            return self._make(name, None, value.dtype, value.shape, None, 0, 0)
        dtype = None
        if isinstance(value, TensorRef):
            dtype, value = value.dtype, value.array
        if not isinstance(value, np.ndarray):
            raise TypeError(f"tensor {name}: expected a numpy array, torch tensor, TensorRef or "
                            f"TensorSpec, not {type(value).__name__}")
        if dtype is None:
            dtype = _numpy_dtype_name(value, name)
        if not value.flags.c_contiguous:
            raise ValueError(f"tensor {name}: shape {list(value.shape)} with strides "
                             f"{list(value.strides)} bytes is not C-contiguous; "
                             "use np.ascontiguousarray")
        if self.writable and not value.flags.writeable:
            raise ValueError(f"tensor {name}: the array is read-only and would be written")
        self.keepalive.append(value)
        data = value.ctypes.data if value.size else None
        strides = [s // value.itemsize for s in value.strides]
        return self._make(name, data, dtype, value.shape, strides, 0, 0)

    def _from_torch(self, name: str, t: Any, allow_cuda: bool) -> WsTensor:
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in DTYPES:
            raise TypeError(f"tensor {name}: torch dtype {t.dtype} has no weightsync dtype")
        if not t.is_contiguous():
            raise ValueError(f"tensor {name}: shape {list(t.shape)} with strides "
                             f"{list(t.stride())} is not contiguous; use .contiguous()")
        if t.device.type not in ("cpu", "cuda") or (t.device.type == "cuda" and not allow_cuda):
            raise ValueError(f"tensor {name}: on {t.device}; this call takes "
                             f"{'cpu or cuda' if allow_cuda else 'cpu'} tensors")
        self.keepalive.append(t)
        device = 1 if t.device.type == "cuda" else 0
        index = (t.device.index or 0) if device else 0
        data = t.data_ptr() if t.numel() else None
        return self._make(name, data, dtype, tuple(t.shape), list(t.stride()), device, index)

    def _make(self, name, data, dtype, shape, strides, device, index) -> WsTensor:
        encoded = name.encode("utf-8")
        shape_arr = (ctypes.c_int64 * max(len(shape), 1))(*shape)
        strides_arr = None if strides is None else (ctypes.c_int64 * max(len(shape), 1))(*strides)
        self.keepalive += [encoded, shape_arr, strides_arr]
        return WsTensor(encoded, data, DTYPES[dtype], len(shape), shape_arr,
                        strides_arr if strides_arr is not None else None, device, index)


def specs_of(lib, handle) -> List[TensorSpec]:
    """Reads a ws_tensor_list into TensorSpecs and destroys it."""
    try:
        out = []
        for i in range(lib.ws_tensor_list_size(handle)):
            t = WsTensor()
            if lib.ws_tensor_list_get(handle, i, ctypes.byref(t)) != 0:
                raise RuntimeError("ws_tensor_list_get failed on an index in range")
            out.append(TensorSpec(t.name.decode("utf-8"), DTYPE_NAMES[t.dtype],
                                  tuple(t.shape[d] for d in range(t.ndim))))
        return out
    finally:
        lib.ws_tensor_list_destroy(handle)


def allocate(specs: Iterable[TensorSpec], like: str = "numpy",
             device: Optional[str] = None) -> Dict[str, Any]:
    """Zeroed tensors for `specs`: numpy arrays (bf16/FP8 as ml_dtypes, or uint storage without
    it) or, with like="torch", torch tensors on `device` (default cpu)."""
    if like == "torch":
        torch = _torch()
        if torch is None:
            raise ImportError("allocate(like='torch') needs torch imported")
        # Zeroed as bytes, then viewed: torch 2.4 cannot fill FP8 tensors on the CPU.
        return {s.name: torch.zeros(math.prod(s.shape) * _ITEMSIZE[s.dtype], dtype=torch.uint8,
                                    device=device or "cpu")
                .view(getattr(torch, s.dtype)).reshape(s.shape) for s in specs}
    if like != "numpy":
        raise ValueError(f"like must be 'numpy' or 'torch', not {like!r}")
    out: Dict[str, Any] = {}
    for s in specs:
        array = np.zeros(s.shape, dtype=numpy_dtype(s.dtype))
        needs_ref = array.dtype.name != s.dtype and _numpy_name_or_none(array) != s.dtype
        out[s.name] = TensorRef(array, s.dtype) if needs_ref else array
    return out


def _numpy_name_or_none(array: np.ndarray) -> Optional[str]:
    try:
        return _numpy_dtype_name(array, "")
    except TypeError:
        return None
