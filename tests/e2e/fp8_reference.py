"""An independent reference for weightsync's conversion rule, written with numpy and ml_dtypes.

It shares no code with the C++ engine: bf16 and float8_e4m3fn rounding come from ml_dtypes (the
JAX dtype package), the block arithmetic from numpy's IEEE float32. The rule (docs/conversion.md):
  bf16/FP8 destinations take the source rounded to bf16 first (fp32 sources), fp32 ones take it as is;
  per 128x128 block: amax = max|x|; scale = max(amax / 448, 1e-12); q = e4m3fn(clamp(x / scale, +-448)).
"""
import json
import struct

import ml_dtypes
import numpy as np

BF16 = ml_dtypes.bfloat16
E4M3 = ml_dtypes.float8_e4m3fn
BLOCK = 128


def values_for(x: np.ndarray, destination: str) -> np.ndarray:
    """The float32 values a destination of this dtype is computed from."""
    if destination == "float32":
        return x.astype(np.float32)
    if x.dtype == np.float32:
        return x.astype(BF16).astype(np.float32)
    return x.astype(np.float32)


def cast(x: np.ndarray, destination: str) -> np.ndarray:
    v = values_for(x, destination)
    return v if destination == "float32" else v.astype(BF16)


def quantize_fp8(x: np.ndarray):
    """x: [rows, cols] source (bf16/f16/f32). Returns (q float8_e4m3fn [rows, cols], scale f32)."""
    v = values_for(x, "float8_e4m3fn")
    rows, cols = v.shape
    br, bc = -(-rows // BLOCK), -(-cols // BLOCK)
    padded = np.zeros((br * BLOCK, bc * BLOCK), np.float32)  # |0| never raises a block's amax
    padded[:rows, :cols] = v
    blocks = padded.reshape(br, BLOCK, bc, BLOCK)
    amax = np.abs(blocks).max(axis=(1, 3)).astype(np.float32)
    scale = np.maximum(amax / np.float32(448.0), np.float32(1e-12)).astype(np.float32)
    q = np.clip(blocks / scale[:, None, :, None], np.float32(-448), np.float32(448))
    q = q.astype(np.float32).reshape(br * BLOCK, bc * BLOCK)[:rows, :cols].astype(E4M3)
    return q, scale


def quantize_stack(parts):
    """parts: per expert, a 2D source. Returns stacked (q, scale)."""
    qs, ss = zip(*(quantize_fp8(p) for p in parts))
    return np.stack(qs), np.stack(ss)


_DTYPES = {"BF16": BF16, "F16": np.float16, "F32": np.float32, "F8_E4M3": E4M3, "I64": np.int64,
           "U8": np.uint8}


def read_safetensors(path):
    """Reads a .safetensors file straight from its bytes (the reference package cannot load FP8
    into numpy). Returns (tensors, metadata)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        data = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=_DTYPES[info["dtype"]])
        out[name] = data.reshape(info["shape"])
    return out, metadata


def read_checkpoint(path):
    """A .safetensors file, or a directory with model.safetensors.index.json or one file."""
    import os
    if os.path.isfile(path):
        return read_safetensors(path)[0]
    index = os.path.join(path, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else sorted(f for f in os.listdir(path) if f.endswith(".safetensors")))
    out = {}
    for f in files:
        tensors, _ = read_safetensors(os.path.join(path, f))
        out.update(tensors)
    return out
