"""Interoperability helper for io_test: the reference `safetensors` package on the other side.

  safetensors_interop.py write OUT_DIR   writes OUT_DIR/ref.safetensors and OUT_DIR/manifest.json
  safetensors_interop.py check SPEC      reads the files weightsync wrote, as SPEC describes

Tensor bytes follow pattern(seed, i), the same formula as PatternByte in io_test_util.cc, so each
side recomputes every byte instead of trusting the other. Only numpy is needed: dtypes numpy lacks
(bf16, fp8) travel as raw bytes through safetensors' low-level serialize/deserialize.
"""
import json
import os
import sys

import numpy as np
import safetensors

# safetensors header name -> the name serialize() takes (torch spelling).
TORCH_NAMES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16",
    "BF16": "bfloat16", "F32": "float32", "F64": "float64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
}
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8,
         "U64": 8, "F16": 2, "BF16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
         "F8_E8M0": 1}
# Dtypes numpy can hold, for the safe_open(framework="numpy") checks.
NUMPY_TYPES = {"U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
               "I32": np.int32, "U32": np.uint32, "I64": np.int64, "U64": np.uint64,
               "F16": np.float16, "F32": np.float32, "F64": np.float64}


def pattern(seed, nbytes):
    i = np.arange(nbytes, dtype=np.uint64)
    return ((seed * 131 + i * 7 + (i >> 8)) & 0xFF).astype(np.uint8).tobytes()


def nbytes(dtype, shape):
    n = SIZES[dtype]
    for d in shape:
        n *= d
    return n


def serialize(tensors, metadata):
    """tensors: {name: (dtype, shape, bytes)}; works with old (dict) and new (TensorSpec) APIs."""
    spec_type = getattr(safetensors, "TensorSpec", None)
    if spec_type is None:
        raw = {name: {"dtype": TORCH_NAMES[d], "shape": s, "data": b}
               for name, (d, s, b) in tensors.items()}
        return safetensors.serialize(raw, metadata=metadata)
    keep_alive = []
    specs = {}
    for name, (d, s, b) in tensors.items():
        array = np.frombuffer(b, dtype=np.uint8).copy() if b else np.zeros(1, dtype=np.uint8)
        keep_alive.append(array)
        specs[name] = spec_type(dtype=TORCH_NAMES[d], shape=list(s),
                                data_ptr=array.ctypes.data, data_len=len(b))
    return safetensors.serialize(specs, metadata=metadata)


def write(out_dir):
    cases = [
        ("embed.weight", "BF16", [4, 6]),
        ("attn.q.weight", "F8_E4M3", [8, 3]),
        ("attn.q.weight_scale_inv", "F32", [2, 1]),
        ("norm.weight", "F16", [5]),
        ("step", "I64", []),
        ("mask", "U8", [3, 3]),
        ("flag", "BOOL", [2]),
        ("empty", "F32", [0]),
        ("empty.middle", "BF16", [2, 0, 3]),
        ("double", "F64", [1, 1, 1, 2]),
        ("e5m2", "F8_E5M2", [7]),
    ]
    tensors = {}
    manifest = {"metadata": {"format": "pt", "note": "written by safetensors " +
                             safetensors.__version__}, "tensors": {}}
    for seed, (name, dtype, shape) in enumerate(cases):
        data = pattern(seed, nbytes(dtype, shape))
        if dtype == "BOOL":  # the reference may insist on 0/1 bytes for bool
            data = bytes(b & 1 for b in data)
        tensors[name] = (dtype, shape, data)
        manifest["tensors"][name] = {"dtype": dtype, "shape": shape, "hex": data.hex()}
    blob = serialize(tensors, manifest["metadata"])
    with open(os.path.join(out_dir, "ref.safetensors"), "wb") as f:
        f.write(blob)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def check_file(path, expected_tensors, expected_metadata):
    with open(path, "rb") as f:
        loaded = dict(safetensors.deserialize(f.read()))
    assert set(loaded) == {t["name"] for t in expected_tensors}, (path, sorted(loaded))
    with safetensors.safe_open(path, framework="numpy") as f:
        assert (f.metadata() or {}) == expected_metadata, (path, f.metadata())
        assert set(f.keys()) == set(loaded)
        for t in expected_tensors:
            got = loaded[t["name"]]
            assert got["dtype"] == t["dtype"], (t["name"], got["dtype"])
            assert list(got["shape"]) == t["shape"], (t["name"], got["shape"])
            want = pattern(t["seed"], nbytes(t["dtype"], t["shape"]))
            assert bytes(got["data"]) == want, ("bytes differ", path, t["name"])
            if t["dtype"] in NUMPY_TYPES:
                array = f.get_tensor(t["name"])
                assert array.dtype == NUMPY_TYPES[t["dtype"]], (t["name"], array.dtype)
                assert list(array.shape) == t["shape"]
                assert array.tobytes() == want, ("safe_open bytes differ", t["name"])


def check(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    for file in spec.get("files", []):
        check_file(file["path"], file["tensors"], file.get("metadata", {}))
    for ckpt in spec.get("checkpoints", []):
        with open(os.path.join(ckpt["dir"], "model.safetensors.index.json")) as f:
            index = json.load(f)
        by_file = {}
        for name, shard in index["weight_map"].items():
            by_file.setdefault(shard, []).append(name)
        expected = {t["name"]: t for t in ckpt["tensors"]}
        assert set(index["weight_map"]) == set(expected)
        assert index["metadata"]["total_size"] == sum(
            nbytes(t["dtype"], t["shape"]) for t in ckpt["tensors"])
        for shard, names in by_file.items():
            check_file(os.path.join(ckpt["dir"], shard), [expected[n] for n in names],
                       ckpt.get("metadata", {}))
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    (write if sys.argv[1] == "write" else check)(sys.argv[2])
