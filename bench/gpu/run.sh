#!/usr/bin/env bash
# GPU-host checks in one call (device time is scarce): the cuda_ipc tests between real GPUs and
# their throughput beside an in-process device-to-device copy, `weightsync bench transport
# --backend cuda_ipc` (large writes against the same-run copy baseline; 100k small writes, batched
# kernel against per-write copies), then the CPU conversion benchmark on the host's quiet CPU.
# Expects the folder bench/gpu/stage.sh filled: the first argument, else this script's own folder
# when it is the staged copy, else build-gpu/. Results go to $OUT.
#
#   bash bench/gpu/run.sh [STAGED_DIR] [--no-convert]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${1:-}" ] && [ "$1" != --no-convert ]; then
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
    "$b/transport_gpu_test" --gtest_output=json:"$out/transport_gpu_test.json" 2>&1 | tee "$out/transport_gpu_test.txt"
{
  for size in 64MiB 1GiB 4GiB; do
    "$b/weightsync" bench transport --backend cuda_ipc --size $size --iters 20 --warmup 2
  done
  for size in 4KiB 64B; do
    "$b/weightsync" bench transport --backend cuda_ipc --size $size --count 100000 --iters 5 \
        --warmup 1
  done
  "$b/weightsync" bench transport --backend cuda_ipc --size 64B --count 100000 --iters 5 \
      --warmup 1 --json
} 2>&1 | tee "$out/bench_cuda_ipc.txt"
[ "${1:-}" = --no-convert ] && exit 0
"$b/convert_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_color=false 2>&1 | tee "$out/convert_bench.txt" | tail -30
