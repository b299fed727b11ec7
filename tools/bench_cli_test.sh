#!/usr/bin/env bash
# `weightsync bench transport` end to end: the local backend prints a JSON object with `gbps`, and
# cuda_ipc either measures (GPU host: its JSON carries the in-run copy baseline and ratio) or, on a
# machine without a GPU or driver, fails cleanly: exit code 1, an "unavailable: ..." reason, no
# crash. Usage: bench_cli_test.sh PATH/TO/weightsync
set -uo pipefail
ws="$1"
fail() { echo "bench_cli_test: $*" >&2; exit 1; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

out=$("$ws" --log-level warning bench transport --backend local --size 64KiB --count 4 --iters 3 \
      --warmup 1 --json) || fail "local bench failed: $out"
json=$(grep '^{' <<<"$out" | tail -1)
[ "$(field "$json" count)" = 4 ] || fail "count missing: $json"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$(field "$json" gbps)" ||
  fail "gbps not positive: $json"

err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$("$ws" --log-level warning bench transport --backend cuda_ipc --size 1MiB --iters 2 \
      --warmup 1 --json 2>"$err")
rc=$?
if [ $rc -eq 0 ]; then
  json=$(grep '^{' <<<"$out" | tail -1)
  field "$json" ratio >/dev/null || fail "cuda_ipc JSON lacks the copy baseline: $json"
  echo "bench_cli_test: cuda_ipc measured on this host: $json"
else
  [ $rc -eq 1 ] || fail "cuda_ipc exited with $rc (crash?): $(cat "$err")"
  grep -q "unavailable: " "$err" || fail "cuda_ipc failed without saying why: $(cat "$err")"
  echo "bench_cli_test: cuda_ipc unavailable here, as expected: $(cat "$err")"
fi

# ucx with GPU buffers: measures beside the in-run copy when the loaded UCX has CUDA support and a
# GPU is here; otherwise exit code 1 naming why (no driver, or a UCX without CUDA support).
out=$("$ws" --log-level warning bench transport --backend ucx --memory cuda --size 1MiB --iters 2 \
      --warmup 1 --json 2>"$err")
rc=$?
if [ $rc -eq 0 ]; then
  json=$(grep '^{' <<<"$out" | tail -1)
  field "$json" copy_gbps >/dev/null || fail "ucx --memory cuda JSON lacks the copy baseline: $json"
  echo "bench_cli_test: ucx with GPU memory measured on this host: $json"
else
  [ $rc -eq 1 ] || fail "ucx --memory cuda exited with $rc (crash?): $(cat "$err")"
  grep -Eq "unavailable: |cannot register GPU memory" "$err" ||
    fail "ucx --memory cuda failed without saying why: $(cat "$err")"
  echo "bench_cli_test: ucx with GPU memory unavailable here, as expected: $(cat "$err")"
fi
"$ws" bench transport --backend cuda_ipc --memory host --size 1MiB >/dev/null 2>"$err"
[ $? -eq 2 ] && grep -q "GPU memory only" "$err" || fail "cuda_ipc --memory host not refused: $(cat "$err")"
