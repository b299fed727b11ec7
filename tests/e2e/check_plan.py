#!/usr/bin/env python3
"""End-to-end checks of `weightsync plan`: the JSON keys the issue promises, the targets on the
seed's production shape (GLM-5) and on Kimi-K2, and errors that name the problem."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from e2e_report import report

REQUIRED = ["inference_bytes_held_per_gpu_max", "trainer_nic_bytes_max", "trainer_nic_bytes_mean",
            "writes_per_trainer_rank_max", "staging_bytes_per_trainer_rank_max",
            "speed_of_light_seconds", "predicted_seconds", "coverage_ok"]

SHAPES = {
    # name: (flags, bytes the busiest inference GPU must hold, roughly)
    "glm5": (["--preset", "glm5", "--trainer", "fsdp=64,ep=8", "--inference", "ep=16,replicas=2",
              "--network", "nic=50GB/s,nvlink=450GB/s,gpus-per-node=8"], 66.5e9),
    "kimi_k2": (["--preset", "kimi_k2", "--trainer", "fsdp=256,ep=64", "--inference",
                 "ep=16,replicas=8", "--network", "nic=400Gb/s,nvlink=450GB/s,gpus-per-node=8"],
                77.7e9),
}


def run(binary, flags):
    return subprocess.run([binary, "plan", *flags], capture_output=True, text=True, check=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weightsync", required=True)
    args = parser.parse_args()
    failures = []
    for name, (flags, held) in SHAPES.items():
        proc = run(args.weightsync, flags + ["--json"])
        if proc.returncode != 0:
            failures.append(f"{name}: exit {proc.returncode}: {proc.stderr}")
            continue
        r = json.loads(proc.stdout)
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            failures.append(f"{name}: missing keys {missing}")
            continue
        checks = {
            "coverage_ok": r["coverage_ok"] is True,
            "nic balance <= 1.10": r["trainer_nic_bytes_max"] <= 1.10 * r["trainer_nic_bytes_mean"],
            "predicted <= 1.15 x speed of light":
                r["predicted_seconds"] <= 1.15 * r["speed_of_light_seconds"],
            "predicted >= speed of light": r["predicted_seconds"] >= r["speed_of_light_seconds"],
            "writes per rank < 9000": r["writes_per_trainer_rank_max"] < 9000,
            "held bytes": abs(r["inference_bytes_held_per_gpu_max"] - held) < 0.01 * held,
        }
        failures += [f"{name}: {c} ({r})" for c, ok in checks.items() if not ok]
        # Same inputs, same plan.
        again = json.loads(run(args.weightsync, flags + ["--json"]).stdout)
        if again["plan_hash"] != r["plan_hash"]:
            failures.append(f"{name}: plan hash differs between runs")
        human = run(args.weightsync, flags)
        if human.returncode != 0 or "predicted_seconds" not in human.stdout:
            failures.append(f"{name}: human summary: {human.stdout} {human.stderr}")

    # A Hugging Face config.json with Kimi-K2's dimensions gives the preset's plan.
    kimi = {"model_type": "kimi_k2", "hidden_size": 7168, "vocab_size": 163840,
            "num_hidden_layers": 61, "intermediate_size": 18432, "moe_intermediate_size": 2048,
            "first_k_dense_replace": 1, "n_routed_experts": 384, "n_shared_experts": 1,
            "num_attention_heads": 64, "num_key_value_heads": 64, "q_lora_rank": 1536,
            "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
            "v_head_dim": 128, "num_nextn_predict_layers": 0, "tie_word_embeddings": False}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.json")
        with open(path, "w") as f:
            json.dump(kimi, f)
        shape = ["--trainer", "fsdp=64,ep=8", "--inference", "ep=16", "--json"]
        from_config = run(args.weightsync, ["--config", path] + shape)
        from_preset = run(args.weightsync, ["--preset", "kimi_k2"] + shape)
        if from_config.returncode or from_preset.returncode or (
                json.loads(from_config.stdout)["plan_hash"]
                != json.loads(from_preset.stdout)["plan_hash"]):
            failures.append(f"config.json vs preset: {from_config.stderr} {from_preset.stderr}")

    bad = run(args.weightsync, ["--preset", "qwen3_235b", "--trainer", "fsdp=8",
                                "--inference", "tp=8", "--source-format", "hf-fused"])
    # Invalid input (INVALID_ARGUMENT) exits 2, as a bad flag does.
    if bad.returncode != 2 or "w13_weight" not in bad.stderr or "128" not in bad.stderr:
        failures.append(f"unaligned FP8 split: exit {bad.returncode}, stderr {bad.stderr!r}")
    bad = run(args.weightsync, ["--preset", "glm5", "--trainer", "fsdp=64,ep=7"])
    if bad.returncode != 2 or "ep must divide fsdp" not in bad.stderr:
        failures.append(f"bad trainer: exit {bad.returncode}, stderr {bad.stderr!r}")

    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
