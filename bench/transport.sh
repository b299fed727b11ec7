#!/usr/bin/env bash
# Transport throughput between two processes on this host: `weightsync bench transport` beside
# `ucx_perftest -t ucp_put_bw` with the same message size and transport, in the same run, and the
# ratio (target: >= 0.9).
#
#   bench/transport.sh [--build build] [--size 64MiB] [--iters 200] [--tls tcp|sm|...]
#
# ucx_perftest's server listens on every interface, so the whole run happens inside a private
# network namespace holding only loopback (created here with `unshare --net`; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${WEIGHTSYNC_BENCH_NETNS:-}" ]; then
  exec unshare --net -- env WEIGHTSYNC_BENCH_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' \
    "$0" "$@" || { echo "bench/transport.sh: cannot create a network namespace (run as root)"; exit 1; }
fi
build=build size=64MiB iters=200 tls_list="sm tcp" port=13444
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --tls) tls_list=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
weightsync="$build/tools/weightsync"
command -v ucx_perftest >/dev/null || { echo "ucx_perftest missing (apt-get install ucx-utils)"; exit 77; }
bytes=$(python3 - "$size" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+)\s*([KMG]i?B)?", sys.argv[1])
mult = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
print(int(m.group(1)) * mult[m.group(2)])
PY
)
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(hostname) $(nproc) cores, size $size ($bytes bytes), iters $iters"
for tls in $tls_list; do
  export UCX_TLS=$tls UCX_NET_DEVICES=lo
  [ "$tls" = tcp ] || unset UCX_NET_DEVICES
  ucx_perftest -p $port >/dev/null 2>&1 &
  server=$!
  sleep 1
  # "Final:  iters  lat50 latavg latall  bw_avg(MB/s) bw_overall(MB/s) ..." ; MB = 2^20 bytes.
  perf_mbps=$(ucx_perftest 127.0.0.1 -p $port -t ucp_put_bw -s "$bytes" -n "$iters" 2>/dev/null |
              awk '/^Final:/ {print $7}')
  wait $server || true
  perf_gbps=$(python3 -c "print(${perf_mbps:-0} * 2**20 / 1e9)")
  ours=$("$weightsync" --log-level warning bench transport --backend ucx --ucx-tls "$tls" \
         ${UCX_NET_DEVICES:+--ucx-net-devices lo} --size "$size" --iters "$iters" --json | grep '^{' | tail -1)  # UCX logs on stdout
  ours_gbps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['gbps'])" "$ours")
  python3 - "$tls" "$perf_gbps" "$ours_gbps" <<'PY'
import sys
tls, perf, ours = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print(f"UCX_TLS={tls:4s} ucx_perftest ucp_put_bw {perf:7.2f} GB/s | weightsync ucx {ours:7.2f} GB/s"
      f" | ratio {ours / perf if perf else float('nan'):.2f}")
PY
done
local_json=$("$weightsync" --log-level warning bench transport --backend local --size "$size" --iters "$iters" --json | grep '^{' | tail -1)
python3 -c "import json,sys; print(f\"local (memcpy, one process)              {json.loads(sys.argv[1])['gbps']:7.2f} GB/s\")" "$local_json"
