#!/usr/bin/env bash
# Converts real-size GLM-5 layers (a dense layer, and a MoE layer with all 256 experts) with
# `weightsync convert`, and prints the kernel benchmark's memcpy ratio from the same machine.
# Needs ~3x the layer size in free disk (MoE layer: 19.3 GB bf16 in, 9.7 GB FP8 out).
# Usage: bench/convert_glm5_layer.sh [WORKDIR]   (after scripts/bootstrap.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d -t weightsync-glm5-XXXXXX)}
mkdir -p "$work"
trap 'rm -rf "$work"/*.safetensors "$work"/out_*' EXIT
py=.venv/bin/python
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; $(date -u +%FT%TZ)"
for layers in dense moe; do
  $py bench/glm5_layer/make_glm5_layer.py "$work/glm5_$layers.safetensors" --layers "$layers"
  sync
  for threads in 1 0; do
    build/tools/weightsync convert --model glm_moe_dsa --source-format hf-fused --target-format vllm \
      --partial --threads "$threads" --input "$work/glm5_$layers.safetensors" \
      --output "$work/out_$layers.safetensors" --overwrite --json |
      $py -c "import json,sys; s=json.load(sys.stdin); print(f\"$layers layer, threads=${threads/#0/all}: {s['bytes_read']/1e9:.2f} GB read, {s['bytes_written']/1e9:.2f} GB written, {s['seconds']:.2f} s, {s['gb_per_second']:.2f} GB/s read+write ({s['kernels']}); converting {s['convert_seconds']:.2f} s = {(s['bytes_read']+s['bytes_written'])/s['convert_seconds']/1e9:.2f} GB/s, flushing {s['commit_seconds']:.2f} s\")"
  done
  rm -f "$work/glm5_$layers.safetensors" "$work"/out_*
done
