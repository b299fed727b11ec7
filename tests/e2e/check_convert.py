#!/usr/bin/env python3
"""End-to-end check of `weightsync convert` on a tiny GLM-5-shaped checkpoint.

Writes the checkpoint with the reference `safetensors` package (two shards + index), converts it
with the weightsync binary, and compares every output byte with fp8_reference/tiny_glm: the exact
set of tensor names, dtypes, shapes and bytes. Also checks that bad input (a NaN weight) fails with
an error naming the tensor and leaves no output behind. Exit status 0 means every check passed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77  # ctest's SKIP_RETURN_CODE: the Python tools are missing, not a failure of weightsync
try:
    import numpy as np
    from safetensors.numpy import save_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tiny_glm  # noqa: E402
    from fp8_reference import read_checkpoint  # noqa: E402
except ImportError as e:
    print(f"skipped: {e} (pip install -r requirements-dev.txt)")
    sys.exit(SKIP)


def write_checkpoint(tensors, directory):
    """Two shards and a model.safetensors.index.json, as Hugging Face saves large models."""
    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    for i, chunk in enumerate((names[:half], names[half:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: np.ascontiguousarray(tensors[n]) for n in chunk}, os.path.join(directory, file),
                  metadata={"format": "pt"})
        weight_map.update({n: file for n in chunk})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def convert(binary, source_format, target_format, src, dst, *extra):
    cmd = [binary, "convert", "--model", "glm_moe_dsa", "--source-format", source_format,
           "--target-format", target_format, "--input", src, "--output", dst, "--json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def compare(actual, expected):
    problems = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"missing tensors: {missing[:10]}")
    if extra:
        problems.append(f"unexpected tensors: {extra[:10]}")
    for name in sorted(set(expected) & set(actual)):
        a, e = actual[name], expected[name]
        if a.dtype != e.dtype or a.shape != e.shape:
            problems.append(f"{name}: got {a.dtype}{list(a.shape)}, want {e.dtype}{list(e.shape)}")
            continue
        a_bytes = a.view(np.uint8).reshape(-1)
        e_bytes = np.ascontiguousarray(e).view(np.uint8).reshape(-1)
        diff = np.nonzero(a_bytes != e_bytes)[0]
        if diff.size:
            problems.append(f"{name}: {diff.size} bytes differ, first at byte {diff[0]}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weightsync", required=True)
    parser.add_argument("--source-format", default="hf", choices=["hf", "hf-fused", "torchtitan"])
    parser.add_argument("--target-format", default="vllm", choices=["vllm", "hf-fp8"])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the files in this directory instead of a temporary one")
    args = parser.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="weightsync-e2e-")
    try:
        rng = np.random.default_rng(args.seed)
        canonical = tiny_glm.canonical_tensors(rng, args.dtype)
        src = os.path.join(work, "source")
        write_checkpoint(tiny_glm.source_tensors(canonical, args.source_format), src)

        # A sharded directory output (small shards) and a single-file output must both match.
        expected = (tiny_glm.expected_vllm if args.target_format == "vllm"
                    else tiny_glm.expected_hf_fp8)(canonical)
        failures = []
        for output, extra in ((os.path.join(work, "out_dir"), ["--max-shard-size", "1MiB"]),
                              (os.path.join(work, "out.safetensors"), ["--threads", "2"])):
            run = convert(args.weightsync, args.source_format, args.target_format, src, output, *extra)
            if run.returncode != 0:
                failures.append(f"convert to {output} failed: {run.stderr.strip()}")
                continue
            summary = json.loads(run.stdout)
            problems = compare(read_checkpoint(output), expected)
            failures += [f"{os.path.basename(output)}: {p}" for p in problems]
            print(f"{os.path.basename(output)}: {summary['destination_tensors']} tensors in "
                  f"{len(summary['output_files'])} files, {summary['kernels']} kernels: "
                  f"{'OK' if not problems else 'MISMATCH'}")

        # A NaN weight: refused, named, and nothing written.
        poisoned = dict(canonical)
        name = "model.layers.1.self_attn.q_b_proj.weight"
        poisoned[name] = poisoned[name].copy()
        poisoned[name][5, 7] = np.nan
        bad_src = os.path.join(work, "poisoned")
        write_checkpoint(tiny_glm.source_tensors(poisoned, args.source_format), bad_src)
        bad_out = os.path.join(work, "poisoned_out")
        run = convert(args.weightsync, args.source_format, args.target_format, bad_src, bad_out)
        if run.returncode == 0:
            failures.append("a NaN weight was converted without an error")
        elif name not in run.stderr or "[5, 7]" not in run.stderr:
            failures.append(f"the NaN error does not name {name} [5, 7]: {run.stderr.strip()}")
        leftovers = [f for f in os.listdir(work) if f.startswith(".") or f == "poisoned_out"]
        if leftovers:
            failures.append(f"a failed conversion left files behind: {leftovers}")

        for f in failures:
            print("FAIL:", f)
        print(f"{args.source_format} {args.dtype} -> {args.target_format}: "
              f"{'1 passed, 0 failed' if not failures else '0 passed, 1 failed'}")
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
