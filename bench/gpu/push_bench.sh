#!/usr/bin/env bash
# The GPU push benchmark (issue 7's workload, as far as this build goes): GLM-5 at its real
# dimensions for a slice of layers (one dense, three MoE layers with all 256 experts), bf16 sources
# generated on the trainer GPUs, vLLM-layout FP8 destinations on the inference GPUs, pushed with
# the CUDA conversion kernels and cuda_ipc; beside it, in the same run, the speed of light (peer
# copies of exactly the bytes each inference GPU receives, all at once). Every byte is verified
# after the last timed push. Then the same workload in the NCCL mode (trainer rank 0 broadcasts
# full bf16 tensors, the inference GPU converts): the baseline.
#
#   bash bench/gpu/push_bench.sh STAGED_DIR [TRAINERS INFERENCE]
set -uo pipefail
b=$(cd "${1:-build-gpu}" && pwd)
trainers=${2:-1} inference=${3:-1}
export LD_LIBRARY_PATH=$b/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
echo "== weightsync demo --device cuda --preset glm5 --layers 4 --dense-layers 1" \
     "--trainers $trainers --inference $inference"
timeout 270 "$b/weightsync" demo --device cuda --preset glm5 --layers 4 --dense-layers 1 \
    --trainers "$trainers" --inference "$inference" --pushes 4 --verify last --timeout 300
echo "exit code $?"
echo "== the same in the NCCL mode (--mode nccl)"
timeout 270 "$b/weightsync" demo --device cuda --preset glm5 --layers 4 --dense-layers 1 \
    --trainers "$trainers" --inference "$inference" --pushes 4 --verify last --timeout 300 \
    --mode nccl
echo "exit code $?"
