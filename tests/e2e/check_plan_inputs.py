#!/usr/bin/env python3
"""`weightsync plan` on broken and hostile input (issue 15) and GPU memory (issue 14).

Every config.json or model spec field of the wrong JSON type, and every dimension out of range,
must end the command at once with exit 2 and a message naming the file and the field (before the
fix: an uncaught nlohmann::type_error, std::bad_alloc, or minutes at 100% CPU). A GPU's share of
the weights larger than --gpu-memory is a warning naming the ranks, and a JSON field."""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

from e2e_report import report

DEEPSEEK_V3 = {"model_type": "deepseek_v3", "hidden_size": 7168, "vocab_size": 129280,
               "num_hidden_layers": 61, "intermediate_size": 18432, "moe_intermediate_size": 2048,
               "first_k_dense_replace": 3, "n_routed_experts": 256, "n_shared_experts": 1,
               "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
               "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
               "v_head_dim": 128, "tie_word_embeddings": False}

# (field, value): one field of DeepSeek-V3's config.json changed.
CONFIG_CASES = [
    ("model_type", 5), ("model_type", None), ("tie_word_embeddings", "yes"),
    ("hidden_size", "7168"), ("hidden_size", 2 ** 40), ("vocab_size", 2 ** 62),
    ("num_hidden_layers", 10 ** 9), ("n_routed_experts", -1), ("v_head_dim", -1),
    ("qk_nope_head_dim", 2 ** 61), ("num_attention_heads", 2 ** 40),
]

# A spec extending llama; each case sets one field (a JSON pointer) to a value of the wrong type.
SPEC = {"model": "mine", "extends": "llama", "description": "test",
        "source_formats": {"mine-src": {"rules": [
            {"canonical": "model.norm.weight", "source": "norm.weight"}]}},
        "target_formats": {"vllm": {"tensors": [
            {"name": "extra.weight", "sources": ["extra.weight"], "dtype": "bfloat16",
             "cat_dim": 0, "optional": True, "parallel": "replicated"}]}}}
SPEC_CASES = [
    ("/description", 5, "description"), ("/extends", 5, "extends"),
    ("/source_formats/mine-src/rules/0/canonical", 5, "canonical"),
    ("/target_formats/vllm/tensors/0/cat_dim", "0", "cat_dim"),
    ("/target_formats/vllm/tensors/0/optional", "yes", "optional"),
]

PLAN_SHAPE = ["--trainer", "fsdp=8", "--inference", "tp=8", "--json"]


def run(binary, args, timeout=60):
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False,
                          timeout=timeout)


def set_pointer(document, pointer, value):
    keys = [int(k) if k.isdigit() else k for k in pointer.strip("/").split("/")]
    target = document
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def expect_invalid(failures, label, proc, *named):
    """Exit 2, INVALID_ARGUMENT, and every string of `named` in the message."""
    err = proc.stderr
    if proc.returncode != 2 or "INVALID_ARGUMENT" not in err or any(n not in err for n in named):
        failures.append(f"{label}: exit {proc.returncode}, stderr {err!r}")


def check_configs(binary, tmp, failures):
    path = os.path.join(tmp, "config.json")
    for field, value in CONFIG_CASES:
        config = dict(DEEPSEEK_V3, **{field: value})
        with open(path, "w") as f:
            json.dump(config, f)
        # 30 s is generous: each case must fail before any planning work.
        try:
            proc = run(binary, ["plan", "--config", path, *PLAN_SHAPE], timeout=30)
        except subprocess.TimeoutExpired:
            failures.append(f"config {field}={value!r}: still running after 30 s")
            continue
        expect_invalid(failures, f"config {field}={value!r}", proc, path, field)


def check_specs(binary, tmp, failures):
    path = os.path.join(tmp, "bad_spec.json")
    for pointer, value, field in SPEC_CASES:
        spec = copy.deepcopy(SPEC)
        set_pointer(spec, pointer, value)
        with open(path, "w") as f:
            json.dump(spec, f)
        proc = run(binary, ["plan", "--preset", "glm5_tiny", "--model", path, "--source-format",
                            "hf", "--trainer", "fsdp=1"])
        expect_invalid(failures, f"spec {pointer}={value!r}", proc, path, field)


def check_gpu_memory(binary, failures):
    # DeepSeek-V3 at tp=8 holds about 85 GB per GPU: more than an H100, less than an H200.
    shape = ["plan", "--preset", "deepseek_v3", "--source-format", "hf", *PLAN_SHAPE]
    h100 = run(binary, shape)
    if h100.returncode != 0:
        failures.append(f"deepseek_v3 tp=8: exit {h100.returncode}: {h100.stderr}")
        return
    plan = json.loads(h100.stdout)
    if (plan.get("gpu_memory_bytes") != 80_000_000_000
            or plan.get("inference_ranks_over_gpu_memory") != list(range(8))
            or "inference ranks 0-7" not in h100.stderr or "exceed the GPU memory" not in h100.stderr):
        failures.append(f"h100 default: {h100.stderr!r} {plan.get('gpu_memory_bytes')} "
                        f"{plan.get('inference_ranks_over_gpu_memory')}")
    for memory in ["h200", "90GB"]:
        fits = run(binary, shape + ["--gpu-memory", memory])
        if (fits.returncode != 0 or "warning" in fits.stderr
                or json.loads(fits.stdout)["inference_ranks_over_gpu_memory"] != []):
            failures.append(f"--gpu-memory {memory}: {fits.returncode} {fits.stderr!r}")
    # A bad value is a usage error, reported the way CLI11 reports any bad flag value.
    usage = run(binary, ["demo", "--trainers", "0"]).returncode
    bad = run(binary, shape + ["--gpu-memory", "lots"])
    if bad.returncode in (0, 1) or bad.returncode != usage or "--gpu-memory" not in bad.stderr:
        failures.append(f"--gpu-memory lots: exit {bad.returncode} (usage errors: {usage}), "
                        f"{bad.stderr!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weightsync", required=True)
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        check_configs(args.weightsync, tmp, failures)
        check_specs(args.weightsync, tmp, failures)
    check_gpu_memory(args.weightsync, failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
