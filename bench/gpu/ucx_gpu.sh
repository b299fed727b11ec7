#!/usr/bin/env bash
# The ucx backend on a GPU host, in one call (device time is scarce), most important first:
#   1. the machine, both UCX builds (the host's system UCX and the carried libucx-cu13 wheel) and
#      what each reports (ucx_info -d: transports, memory domains);
#   2. transport_gpu_test's UcxGpu cases on the wheel's UCX: GPU -> GPU and host -> GPU random
#      writes into another process's device memory, every byte verified;
#   3. GPU memory throughput: bench/transport.sh --memory cuda on the wheel's UCX (weightsync bench
#      transport --backend ucx --memory cuda beside the wheel's ucx_perftest -m cuda,cuda, plus our
#      same-run in-process device-to-device copy), then the cuda_ipc backend on the same sizes;
#   4. 64 KiB over shared memory beside ucx_perftest on the host's system UCX (Debian's perftest
#      binary, carried in bin/), as the earlier quiet-host results, then on the wheel's UCX; both
#      unpinned and with each tool's two processes pinned to two CPUs of different cores;
#   5. transport_test's ucx cases (host memory) on the wheel's UCX.
# Expects the folder bench/gpu/stage_ucx.sh filled (this script's own folder). Results go to $OUT.
# --shm-only: step 4 alone (with the CPU topology).
#
#   bash build-gpu-ucx/ucx_gpu.sh [--shm-only]
set -uo pipefail
b=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/weightsync-ucx-gpu}
mkdir -p "$out"
wheel_lib=$b/ucx/libucx/lib
export LD_LIBRARY_PATH=$b/lib:${LD_LIBRARY_PATH:-}
export WEIGHTSYNC_TRANSPORT_PEER=$b/transport_test_peer
wheel_tool() { LD_LIBRARY_PATH=$wheel_lib:$LD_LIBRARY_PATH "$@"; }

# Step 4: the writer on CPU 2, the target on the first CPU of another core (lscpu's topology).
shm_64k() {
  lscpu -e
  local other
  other=$(lscpu -p=CPU,CORE | awk -F, '!/^#/ {core[$1] = $2}
      END {for (c in core) if (c + 0 > 2 && core[c] != core[2] && (best == "" || c + 0 < best)) best = c + 0
           print best}')
  other=${other:-3}
  PATH=$b/bin:$PATH timeout 60 bash "$b/transport.sh" --build "$b" --size 64KiB --tls sm --repeat 11
  PATH=$b/bin:$PATH timeout 60 bash "$b/transport.sh" --build "$b" --size 64KiB --tls sm \
      --repeat 11 --pin "2,$other"
  timeout 60 bash "$b/transport.sh" --build "$b" --ucx-dir "$wheel_lib" --size 64KiB --tls sm \
      --repeat 11 --pin "2,$other"
}
if [ "${1:-}" = --shm-only ]; then
  shm_64k 2>&1 | tee "$out/bench_shm_64k_pinned.txt"
  exit 0
fi

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version --format=csv
  echo "cores $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  lscpu | grep -E "Model name" | cut -c1-120
  echo "== system UCX:"; ldconfig -p | grep -E 'libucp\.so|libuct_cuda' || echo "no libucp in ldconfig"
  PATH=$b/bin:$PATH ucx_info -v | head -2
  ls "$(dirname "$(ldconfig -p | awk '/libucs.so.0 / {print $NF; exit}')")/ucx" 2>&1 | tr '\n' ' '; echo
  echo "== wheel UCX ($(cat "$b/ucx/libucx/UCX_WHEEL_VERSION.txt")):"
  wheel_tool "$b/ucx/libucx/bin/ucx_info" -v | head -2
  wheel_tool "$b/ucx/libucx/bin/ucx_info" -d | grep -E "Memory domain|Transport|memory types" | head -40
  echo "== weightsync info (wheel):"
  WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR=$wheel_lib "$b/weightsync" info | sed -n '/^Transports/,/^$/p'
} 2>&1 | tee "$out/machine.txt"

WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR=$wheel_lib timeout 60 "$b/transport_gpu_test" \
    --gtest_filter='UcxGpu*' 2>&1 | tee "$out/ucx_gpu_test.txt" | grep -vE '^\[weightsync D'

{
  timeout 100 bash "$b/transport.sh" --build "$b" --ucx-dir "$wheel_lib" --memory cuda \
      --tls sm,cuda_copy,cuda_ipc --size "1MiB 64MiB 1GiB" --repeat 3
  echo "== cuda_ipc backend, same sizes (GPU 0 -> GPU $( [ "$(nvidia-smi -L | wc -l)" -gt 1 ] && echo 1 || echo 0))"
  for size in 1MiB 64MiB 1GiB; do
    "$b/weightsync" --log-level warning bench transport --backend cuda_ipc --size $size \
        --iters $([ $size = 1MiB ] && echo 1024 || echo 20) --warmup 5
  done
} 2>&1 | tee "$out/bench_gpu.txt"

shm_64k 2>&1 | tee "$out/bench_shm_64k.txt"

WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR=$wheel_lib timeout 45 "$b/transport_test" \
    --gtest_filter='*ucx*' 2>&1 | tee "$out/transport_test_wheel.txt" | grep -E '^\[  (PASSED|FAILED|SKIPPED) ' | head -20
