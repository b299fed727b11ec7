#!/usr/bin/env python3
"""End-to-end check of `weightsync demo --dump` against an independent reference.

Runs a demo with expert parallelism (non-expert tensors replicated on every inference rank,
experts split), then, for every push, converts the dumped source weights with the hand-written
numpy reference of tiny_glm.expected_vllm (no code shared with weightsync) and compares every
inference rank's dumped memory with it, experts selected through the rank's
weightsync.expert_map metadata. Also checks --json's fields and that --trace is a valid trace.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
try:
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tiny_glm  # noqa: E402
    from fp8_reference import read_safetensors  # noqa: E402
except ImportError as e:
    print(f"skipped: {e} (pip install -r requirements-dev.txt)")
    sys.exit(SKIP)

GLM5_TINY = dict(layers=3, dense_layers=1, experts=8)  # src/plan/model_dims.cc: glm5_tiny
PADDED_VOCAB = ("model.embed_tokens.weight", "lm_head.weight")


def same_bytes(a, e):
    return (a.dtype == e.dtype and a.shape == e.shape and
            np.array_equal(a.view(np.uint8), np.ascontiguousarray(e).view(np.uint8)))


def check_rank(actual, metadata, expected):
    problems = []
    experts = json.loads(metadata["weightsync.expert_map"])
    if set(actual) != set(expected):
        problems.append(f"tensor names differ: {sorted(set(actual) ^ set(expected))[:6]}")
    for name in sorted(set(actual) & set(expected)):
        want, got = expected[name], actual[name]
        layer = name.rsplit(".", 1)[0]
        if layer in experts:  # an expert stack: this rank's experts, in its local order
            want = want[experts[layer]]
        if name in PADDED_VOCAB:  # rows past the vocabulary are padding, never written
            got = got[:want.shape[0]]
        if not same_bytes(got, want):
            problems.append(f"{name}: got {got.dtype}{list(got.shape)}, want "
                            f"{want.dtype}{list(want.shape)} or different bytes")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weightsync", required=True)
    parser.add_argument("--keep", help="keep the dump in this directory")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="weightsync-demo-")
    try:
        dump, trace = os.path.join(work, "dump"), os.path.join(work, "trace.json")
        run = subprocess.run([args.weightsync, "demo", "--trainers", "3", "--inference", "2",
                              "--expert-parallel", "--pushes", "2", "--json", "--dump", dump,
                              "--trace", trace], capture_output=True, text=True, timeout=600)
        failures = []
        if run.returncode != 0:
            print(run.stdout, run.stderr)
            return 1
        rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
        if [r["step"] for r in rows] != [1, 2] or not all(r["verified"] for r in rows):
            failures.append(f"--json rows: {rows}")
        for r in rows:
            if not (r["bytes"] > 0 and r["seconds"] > 0):
                failures.append(f"--json row without bytes or seconds: {r}")
        events = json.load(open(trace))["traceEvents"]
        if not any(e.get("name") == "convert+write" for e in events):
            failures.append("the trace has no convert+write spans")
        for step in (1, 2):
            source, _ = read_safetensors(os.path.join(dump, "source", f"step_{step}.safetensors"))
            expected = tiny_glm.expected_vllm(source, dims=GLM5_TINY)
            for rank in (0, 1):
                path = os.path.join(dump, f"inference_{rank}", f"step_{step}.safetensors")
                actual, metadata = read_safetensors(path)
                problems = check_rank(actual, metadata, expected)
                failures += [f"step {step} inference {rank}: {p}" for p in problems]
                print(f"step {step} inference {rank}: {len(actual)} tensors "
                      f"{'OK' if not problems else 'MISMATCH'}")
        for f in failures:
            print("FAIL:", f)
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
