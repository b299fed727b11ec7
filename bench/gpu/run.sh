#!/usr/bin/env bash
# GPU-host checks in one call (device time is scarce), in this order:
#   1. transport_gpu_test: cuda_ipc between processes, random writes verified, throughput beside an
#      in-process device-to-device copy;
#   2. convert_gpu_test and convert_gpu_bench: the CUDA conversion kernels bit for bit against the
#      scalar reference, and their bandwidth beside a device-to-device copy (when staged);
#   3. `weightsync bench transport --backend cuda_ipc`: large writes against the same-run copy;
#      100k small writes, batched kernel against per-write copies;
#   4. `weightsync demo --device cuda`: trainer and inference processes with GPU tensors (CUDA
#      conversion, cuda_ipc), every byte verified; tensor and expert parallel, a kill drill;
#   5. weightsync.torch on CUDA tensors over cuda_ipc (tests/python/test_torch.py), once with the
#      trainers' PyTorch allocator in expandable segments (parameters in cuMemMap memory; only the
#      staging must be plain cudaMalloc), once with the inference side's;
#   6. the CPU conversion benchmark on the host's quiet CPU (skip with --no-cpu).
# Expects the folder bench/gpu/stage.sh filled: the first argument, else this script's own folder
# when it is the staged copy, else build-gpu/. Results go to $OUT (at most 8 files come back).
#
#   bash bench/gpu/run.sh [STAGED_DIR] [--no-cpu]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${1:-}" ] && [ "$1" != --no-cpu ]; then
  b=$(cd "$1" && pwd); shift
elif [ -x "$here/transport_gpu_test" ]; then
  b=$here
else
  b=$(cd "$here/../../build-gpu" && pwd)
fi
out=${OUT:-/tmp/weightsync-gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH=$b/lib:${LD_LIBRARY_PATH:-}
export WEIGHTSYNC_TRANSPORT_PEER=$b/transport_test_peer
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version --format=csv
  nvidia-smi topo -m
  lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-160
} 2>&1 | tee "$out/machine.txt"
WEIGHTSYNC_TEST_GPU_BYTES=$((2 << 30)) WEIGHTSYNC_TEST_GPU_BENCH_BYTES=$((4 << 30)) \
    "$b/transport_gpu_test" 2>&1 | tee "$out/transport_gpu_test.txt" | tail -30
if [ -x "$b/convert_gpu_test" ]; then
  "$b/convert_gpu_test" 2>&1 | tee "$out/convert_gpu_test.txt" | tail -20
  "$b/convert_gpu_bench" 2>&1 | tee "$out/convert_gpu_bench.txt"
  "$b/demo_gpu_test" 2>&1 | tail -3 | tee -a "$out/convert_gpu_test.txt"
fi
{
  for size in 64MiB 1GiB 4GiB; do
    "$b/weightsync" bench transport --backend cuda_ipc --size $size --iters 20 --warmup 2
  done
  for size in 4KiB 64B; do
    "$b/weightsync" bench transport --backend cuda_ipc --size $size --count 100000 --iters 5 \
        --warmup 1
  done
} 2>&1 | tee "$out/bench_cuda_ipc.txt"
{
  for args in "" "--trainers 1 --inference 1" "--trainers 3 --inference 3 --expert-parallel" \
              "--trainers 1 --inference 4" \
              "--trainers 2 --inference 2 --kill-inference 1 --kill-at-step 2 --pushes 3"; do
    echo "== weightsync demo --device cuda $args"
    timeout 300 "$b/weightsync" demo --device cuda $args --trace "$out/demo_trace.json"
    echo "exit code $?"
  done
} 2>&1 | tee "$out/demo_gpu.txt"
repo=$(cd "$here/../.." && pwd)
[ -f "$repo/tests/python/test_torch.py" ] || repo=$(cd "$b/.." && pwd)
if [ -f "$b/lib/libweightsync.so" ] && python3 -c "import torch" 2>/dev/null; then
  last=$(( $(nvidia-smi -L | wc -l) - 1 ))
  for side in TRAINER INFERENCE; do
    echo "== test_torch.py, CUDA tensors, cuda_ipc, $side allocator in expandable segments"
    env WEIGHTSYNC_LIBRARY="$b/lib/libweightsync.so" PYTHONPATH="$repo/python" \
        WEIGHTSYNC_TEST_TORCH_DEVICES="cuda:0,cuda:$last" WEIGHTSYNC_TEST_TORCH_TRANSPORT=cuda_ipc \
        "WEIGHTSYNC_TEST_TORCH_${side}_ALLOC_CONF=expandable_segments:True" \
        timeout 400 python3 -m pytest -q -p no:cacheprovider "$repo/tests/python/test_torch.py" 2>&1 | tail -15
  done 2>&1 | tee "$out/torch_gpu.txt"
fi
[ "${1:-}" = --no-cpu ] && exit 0
"$b/convert_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_color=false 2>&1 | tee "$out/convert_bench.txt" | tail -30
