#!/usr/bin/env bash
# GPU host: tests/gpu/hf_fp8_push.py (FSDP2 trainer -> transformers FP8 model over cuda_ipc,
# compared with transformers' own FP8 loading; its docstring says what is checked). Staged from
# here with bench/gpu/stage_python.sh BUILD DEST (which copies tests/, python/ and the library),
# then on the GPU host, from DEST:  bash tests/gpu/hf_fp8_push.sh OUT_DIR
# The host has no network: HF_HUB_OFFLINE keeps transformers from waiting on the Hub.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: hf_fp8_push.sh OUT_DIR}
mkdir -p "$out"
lib=${WEIGHTSYNC_LIBRARY:-$PWD/lib/libweightsync.so}
export WEIGHTSYNC_LIBRARY=$lib LD_LIBRARY_PATH="$(dirname "$lib"):${LD_LIBRARY_PATH:-}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers",
    transformers.__version__)' | tee -a "$out/gpu.txt"
python3 tests/gpu/hf_fp8_push.py --out "$out" 2>&1 | tee "$out/hf_fp8_push.log"
