#!/usr/bin/env python3
"""The config.json `weightsync convert` writes beside FP8 weights loads in transformers.

Converts the tiny GLM-5-shaped checkpoint (tiny_glm.py, with its config.json) to each FP8 target
and checks that AutoConfig.from_pretrained reads the output folder, that AutoQuantizationConfig
turns its quantization_config into FineGrainedFP8Config with 128x128 blocks, dynamic activations
and the unquantized modules, and that the other fields are the source's. Skipped (77) without
transformers. Exit status 0 means every check passed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
try:
    from transformers import AutoConfig, FineGrainedFP8Config
    from transformers.quantizers.auto import AutoQuantizationConfig

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tiny_glm  # noqa: E402
    from check_convert_safety import make_source  # noqa: E402
except ImportError as e:
    print(f"skipped: {e} (pip install -r requirements-dev.txt)")
    sys.exit(SKIP)


def check_target(binary, src, out, target):
    run = subprocess.run([binary, "convert", "--model", "glm_moe_dsa", "--target-format", target,
                          "--input", src, "--output", out], capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        return [f"{target}: conversion failed: {run.stderr}"]
    problems = []
    try:
        config = AutoConfig.from_pretrained(out)
    except (OSError, ValueError) as e:
        return [f"{target}: AutoConfig.from_pretrained refused the output: {e}"]
    source = tiny_glm.hf_config()
    if (config.model_type, config.hidden_size, config.vocab_size) != (
            source["model_type"], source["hidden_size"], source["vocab_size"]):
        problems.append(f"{target}: AutoConfig read {config.model_type} {config.hidden_size} "
                        f"{config.vocab_size}")
    try:
        quant = AutoQuantizationConfig.from_dict(getattr(config, "quantization_config", {}))
    except ValueError as e:
        return problems + [f"{target}: AutoQuantizationConfig refused quantization_config: {e}"]
    if not isinstance(quant, FineGrainedFP8Config):
        problems.append(f"{target}: quantization_config became {type(quant).__name__}")
        return problems
    if (tuple(quant.weight_block_size), quant.activation_scheme) != ((128, 128), "dynamic"):
        problems.append(f"{target}: blocks {quant.weight_block_size}, {quant.activation_scheme}")
    if "lm_head" not in quant.modules_to_not_convert:
        problems.append(f"{target}: lm_head is not in {quant.modules_to_not_convert}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weightsync", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="weightsync-e2e-config-")
    try:
        src = os.path.join(work, "ck")
        make_source(src)
        failures = []
        for target in ("hf-fp8", "transformers-fp8", "vllm"):
            failures += check_target(args.weightsync, src, os.path.join(work, target), target)
        for f in failures:
            print("FAIL:", f)
        print(f"converted config: {len(failures)} failures")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
