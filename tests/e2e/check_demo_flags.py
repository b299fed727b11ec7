#!/usr/bin/env python3
"""`weightsync demo`'s --model and --preset imply each other (issue 14): `--preset
qwen3_moe_tiny` alone failed on a GLM tensor ("q_a_proj missing") and `--model qwen3_moe` alone
on GLM-shaped weights. A pair that disagree is a usage error naming both."""
import argparse
import json
import subprocess
import sys

from e2e_report import report

SMALL = ["--trainers", "1", "--inference", "1", "--pushes", "1", "--json", "--timeout", "120"]


def run(binary, args):
    return subprocess.run([binary, "demo", *args], capture_output=True, text=True, check=False,
                          timeout=300)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weightsync", required=True)
    binary = parser.parse_args().weightsync
    failures = []
    for flags in (["--preset", "qwen3_moe_tiny"], ["--model", "qwen3_moe"],
                  ["--model", "deepseek_v3"]):
        proc = run(binary, flags + SMALL)
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not rows:
            failures.append(f"{flags}: exit {proc.returncode}: {proc.stderr[-2000:]!r}")
    # A usage error takes CLI11's path, as any bad flag value does (`--trainers 0`).
    usage = run(binary, ["--trainers", "0"]).returncode
    for flags, named in (
            (["--model", "glm_moe_dsa", "--preset", "qwen3_moe_tiny"],
             ["glm_moe_dsa", "qwen3_moe_tiny"]),
            (["--model", "qwen3_moe", "--preset", "glm5_tiny"], ["qwen3_moe", "glm5_tiny"]),
            (["--model", "llama"], ["llama", "no preset"])):
        proc = run(binary, flags + SMALL)
        if (proc.returncode in (0, 1) or proc.returncode != usage
                or any(n not in proc.stderr for n in named)):
            failures.append(f"{flags}: exit {proc.returncode} (usage errors: {usage}), "
                            f"stderr {proc.stderr!r}")
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
