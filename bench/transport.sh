#!/usr/bin/env bash
# Transport throughput between two processes on this host: `weightsync bench transport --backend
# ucx` beside `ucx_perftest -t ucp_put_bw` with the same message size, iterations, warm-up and
# transport (UCX_TLS), in the same run, alternating the two tools; prints the median of each over
# the repeats and the ratio (target: >= 0.9), then the in-process memcpy reference.
#
#   bench/transport.sh [--build build] [--size "64KiB 16MiB"] [--iters N] [--repeat 3]
#                      [--tls "sm tcp"] [--memory host|cuda] [--ucx-dir DIR] [--pin W,T]
#
# --pin W,T: the writers (perftest's client, our writer) run on CPU W and the targets (perftest's
# server, our target) on CPU T. On a quiet many-core host unpinned runs of either tool fall into a
# fast and a slow mode by where the scheduler puts the pair, so medians of a few runs compare
# mode mixes rather than the tools.
#
# --memory cuda: both tools put from GPU memory into GPU memory (perftest `-m cuda,cuda`, ours
# `--memory cuda`: a cuMemAlloc staging pool on each side, GPU 0 -> GPU 1 when there are two, else
# both on GPU 0), with e.g. --tls sm,cuda_copy,cuda_ipc; the line also prints our same-run
# in-process device-to-device copy. Needs a CUDA-enabled UCX: --ucx-dir DIR runs both tools on
# the UCX whose libucp.so.0 is in DIR (e.g. the libucx-cu13 wheel's libucx/lib): perftest and
# ucx_info from DIR/../bin with LD_LIBRARY_PATH=DIR, weightsync with transport.ucx_library_dir=DIR.
#
# --iters defaults to about 1 GiB per run (20 .. 5000 iterations). Both tools put into memory that
# UCX allocated (weightsync: Transport::AllocateAndRegister; ucx_perftest allocates the same way),
# so over shared memory both do one-sided copies. Both targets progress their worker (perftest's
# responder does by default). The load average is printed: on a shared 2-core machine other jobs
# move the numbers far more than the code does.
#
# ucx_perftest's server listens on every interface, so the whole run happens inside a private
# network namespace holding only loopback (created here with `unshare --net`; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${WEIGHTSYNC_BENCH_NETNS:-}" ]; then
  exec unshare --net -- env WEIGHTSYNC_BENCH_NETNS=1 bash -c '"$0" --lo-up && exec "$0" "$@"' \
    "$0" "$@" || { echo "bench/transport.sh: cannot create a network namespace (run as root)"; exit 1; }
fi
if [ "${1:-}" = --lo-up ]; then
  # Loopback up in the new namespace: `ip` where it exists, else the SIOCSIFFLAGS ioctl.
  command -v ip >/dev/null && exec ip link set lo up
  exec python3 -c 'import fcntl, socket, struct
s = socket.socket()
flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))'
fi
build=build sizes="64KiB 16MiB" iters="" repeat=3 warmup=5 tls_list="sm tcp" port=13444
memory=host ucx_dir="" pin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --size) sizes=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --tls) tls_list=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --ucx-dir) ucx_dir=$(cd "$2" && pwd); shift 2 ;;
    --pin) pin=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
weightsync="$build/tools/weightsync"
[ -x "$weightsync" ] || weightsync="$build/weightsync"  # a folder staged by bench/gpu/stage.sh
ucx_tool() { "$@"; }
if [ -n "$ucx_dir" ]; then
  export PATH="$ucx_dir/../bin:$PATH" WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR="$ucx_dir"
  ucx_tool() { LD_LIBRARY_PATH="$ucx_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
fi
perftest_memory=() ours_memory=(--memory "$memory") on_writer=() on_target=()
if [ -n "$pin" ]; then
  on_writer=(taskset -c "${pin%,*}") on_target=(taskset -c "${pin#*,}") ours_memory+=(--pin "$pin")
fi
[ "$memory" = cuda ] && perftest_memory=(-m cuda,cuda)
command -v ucx_perftest >/dev/null || { echo "ucx_perftest missing (apt-get install ucx-utils)"; exit 77; }
to_bytes() {
  python3 - "$1" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+)\s*([KMG]i?B|B)?", sys.argv[1])
mult = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
print(int(m.group(1)) * mult[m.group(2)])
PY
}
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(hostname) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
     "UCX $(ucx_tool ucx_info -v | sed -nE 's/^# (Library version: |Version )//p' | head -1)" \
     "($(command -v ucx_perftest)), memory $memory, pinned to CPUs ${pin:-none}," \
     "repeats $repeat, warm-up $warmup"
for size in $sizes; do
  bytes=$(to_bytes "$size")
  n=${iters:-$(python3 -c "print(max(20, min(5000, (1 << 30) // $bytes)))")}
  for tls in $tls_list; do
    export UCX_TLS=$tls UCX_NET_DEVICES=lo
    [ "$tls" = tcp ] || unset UCX_NET_DEVICES
    perf=() ours=() copy=()
    for _ in $(seq "$repeat"); do
      ucx_tool "${on_target[@]}" ucx_perftest -p $port >/dev/null 2>&1 &
      server=$!
      sleep 0.5
      # "Final: iters lat50 latavg latall bw_avg(MB/s) bw_overall(MB/s) ..."; MB = 2^20 bytes.
      mbps=$(ucx_tool "${on_writer[@]}" ucx_perftest 127.0.0.1 -p $port -t ucp_put_bw -s "$bytes" -n "$n" -w "$warmup" \
             "${perftest_memory[@]}" 2>/dev/null |
             awk '/^Final:/ {print $7}')
      wait $server || true
      perf+=("$(python3 -c "print(${mbps:-0} * 2**20 / 1e9)")")
      json=$("$weightsync" --log-level warning bench transport --backend ucx --ucx-tls "$tls" \
             "${ours_memory[@]}" \
             ${UCX_NET_DEVICES:+--ucx-net-devices lo} --size "$size" --iters "$n" \
             --warmup "$warmup" --json 2>/dev/null | grep '^{' | tail -1)  # UCX logs on stdout
      ours+=("$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['gbps'])" "$json")")
      copy+=("$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('copy_gbps', 0))" "$json")")
    done
    python3 - "$tls" "$size" "$n" "$(median "${perf[@]}")" "$(median "${ours[@]}")" \
        "${perf[*]}" "${ours[*]}" "$(median "${copy[@]}")" <<'PY'
import sys
tls, size, n, perf, ours, perf_all, ours_all, copy = sys.argv[1:]
perf, ours, copy = float(perf), float(ours), float(copy)
fmt = lambda xs: " ".join(f"{float(x):.2f}" for x in xs.split())
d2d = f" | in-process D2D copy {copy:7.2f} GB/s, ucx/copy {ours / copy:.2f}" if copy else ""
print(f"UCX_TLS={tls:4s} {size:>6s} x {n:>5s}: ucx_perftest ucp_put_bw {perf:7.2f} GB/s"
      f" | weightsync ucx {ours:7.2f} GB/s | ratio {ours / perf if perf else float('nan'):.2f}{d2d}"
      f"   (runs: perftest {fmt(perf_all)}; weightsync {fmt(ours_all)})")
PY
  done
  [ "$memory" = host ] || continue  # the local backend writes host memory only
  local_json=$("$weightsync" --log-level warning bench transport --backend local --size "$size" \
               --iters "$n" --json | grep '^{' | tail -1)
  python3 -c "import json,sys; print(f\"local (memcpy, one process) {sys.argv[2]:>6s}      {json.loads(sys.argv[1])['gbps']:7.2f} GB/s\")" "$local_json" "$size"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
