#!/usr/bin/env bash
# GPU-host checks in one call (device time is scarce): the cuda_ipc tests between real GPUs and
# their throughput beside an in-process device-to-device copy, the CUDA conversion kernels against
# the scalar reference and their throughput beside a device-to-device copy (when staged), then
# the CPU conversion benchmark on the host's quiet CPU. Expects build-gpu/ from bench/gpu/stage.sh. Results go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/weightsync-gpu}
mkdir -p "$out"
b=$PWD/build-gpu
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
if [ -x "$b/convert_gpu_test" ]; then
  "$b/convert_gpu_test" --gtest_output=json:"$out/convert_gpu_test.json" 2>&1 | tee "$out/convert_gpu_test.txt" | tail -40
  "$b/convert_gpu_bench" 2>&1 | tee "$out/convert_gpu_bench.txt"
fi
"$b/convert_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_color=false 2>&1 | tee "$out/convert_bench.txt" | tail -30
