#!/usr/bin/env bash
# The main job, until the push demo lands: set up this machine, write a tiny GLM-5-shaped Hugging
# Face checkpoint (partial 128-blocks, planted edge values), convert it to vLLM's kernel layout with
# `weightsync convert`, and check every output byte against an independent numpy reference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

work=$(mktemp -d -t weightsync-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "== checking every converted byte against the numpy/ml_dtypes reference"
.venv/bin/python tests/e2e/check_convert.py --weightsync build/tools/weightsync \
    --source-format hf --target-format vllm --keep "$work"
echo
echo "== weightsync convert, as a user runs it"
build/tools/weightsync convert --model glm_moe_dsa --source-format hf --target-format vllm \
    --input "$work/source" --output "$work/glm5-tiny-vllm.safetensors"
