#!/usr/bin/env bash
# The push agents on a GPU host, in one call (device time is scarce); the kernels' own tests and
# benchmark are run.sh's. In this order:
#   1. the GPU NaN/Inf scan and the device demo pattern against their CPU references
#      (convert_gpu_test's DeviceOpsGpu cases, demo_gpu_test);
#   2. `weightsync demo --device cuda` shapes (TP, EP, 1 -> 4, the kill drill), every byte verified;
#      with 2+ GPUs also the NCCL mode (FSDP trainers, TP inference);
#   3. tests/python/test_torch.py on CUDA tensors over cuda_ipc, once with the trainers' PyTorch
#      allocator in expandable segments, once with the inference side's;
#   4. GLM-5 at real width (1 dense + 2 MoE layers, all 256 experts), 1 trainer -> 1 inference,
#      write mode, verified; then 1 dense + 1 MoE layer with a 2 GiB and a 16 GiB staging ring;
#      on one GPU both processes share it (the scan and phases are what to read there, not the
#      ratio to the peer copy);
#   5. the demo over UCX with GPU memory, when RAPIDS' CUDA-enabled UCX is staged
#      (bench/gpu/stage_ucx.sh; UCX_DIR=its ucx/libucx/lib).
# Output: $OUT/agents_gpu.txt (and $OUT/torch_gpu.txt).
#
#   bash bench/gpu/agents_gpu.sh STAGED_DIR [UCX_DIR]
set -uo pipefail
b=$(cd "$1" && pwd)
ucx_dir=${2:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)  # the checkout (its tests/ and python/)
[ -f "$repo/tests/python/test_torch.py" ] || repo=$(cd "$b/.." && pwd)  # run from a staged copy
out=${OUT:-/tmp/weightsync-agents-gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH=$b/lib:${LD_LIBRARY_PATH:-}
gpus=$(nvidia-smi -L | wc -l)
demo() {
  echo "== weightsync demo --device cuda $*"
  timeout 300 "$b/weightsync" demo --device cuda "$@"
  echo "exit code $?"
}
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
  "$b/convert_gpu_test" --gtest_filter='DeviceOpsGpu.*' 2>&1 | tail -4
  "$b/demo_gpu_test" 2>&1 | tail -3
  demo
  demo --trainers 1 --inference 1
  demo --trainers 3 --inference 3 --expert-parallel
  demo --trainers 1 --inference 4
  demo --trainers 2 --inference 2 --kill-inference 1 --kill-at-step 2 --pushes 3
  # NCCL wants one GPU per rank of a communicator (ranks take GPU i % GPUs, trainers first).
  [ "$gpus" -ge 2 ] && demo --mode nccl --trainers 1 --inference 1
  if [ "$gpus" -ge 3 ]; then
    demo --mode nccl --trainers 2 --inference 1            # FSDP gather to rank 0
    demo --mode nccl --trainers 1 --inference 2            # tensor-parallel slices
  fi
  if [ "$gpus" -ge 4 ]; then
    demo --mode nccl --trainers 2 --inference 2
    demo --mode nccl --trainers 2 --inference 2 --expert-parallel
  fi
} 2>&1 | tee "$out/agents_gpu.txt"
if [ -f "$b/lib/libweightsync.so" ] && python3 -c "import torch" 2>/dev/null; then
  for side in TRAINER INFERENCE; do
    echo "== test_torch.py, CUDA tensors, cuda_ipc, $side allocator in expandable segments"
    env WEIGHTSYNC_LIBRARY="$b/lib/libweightsync.so" PYTHONPATH="$repo/python" \
        WEIGHTSYNC_TEST_TORCH_DEVICES="cuda:0,cuda:$((gpus - 1))" \
        WEIGHTSYNC_TEST_TORCH_TRANSPORT=cuda_ipc \
        "WEIGHTSYNC_TEST_TORCH_${side}_ALLOC_CONF=expandable_segments:True" \
        timeout 400 python3 -m pytest -q -p no:cacheprovider "$repo/tests/python/test_torch.py" 2>&1 |
        tail -15
  done 2>&1 | tee "$out/torch_gpu.txt"
fi
{
  demo --preset glm5 --layers 3 --dense-layers 1 --trainers 1 --inference 1 --pushes 4 \
      --verify last --timeout 300
  # The staging ring's size should hardly matter now that units are released one by one.
  for budget in 2GiB 16GiB; do
    WEIGHTSYNC_PLAN_STAGING_BUDGET=$budget demo --preset glm5 --layers 2 --dense-layers 1 \
        --trainers 1 --inference 1 --pushes 4 --verify last --timeout 300
  done
  if [ -n "$ucx_dir" ]; then
    WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR=$ucx_dir demo --transport ucx --trainers 2 --inference 2
  fi
} 2>&1 | tee -a "$out/agents_gpu.txt"
