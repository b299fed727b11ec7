#!/usr/bin/env bash
# `weightsync orchestrate` end to end on loopback: a store, one trainer and one inference process
# (push_test_peer, push.orchestrator=external) and the orchestrator driving two pushes; then an
# orchestrator that gets no offer fails at its deadline instead of waiting forever.
# Usage: orchestrate_cli_test.sh PATH/TO/weightsync PATH/TO/push_test_peer
set -euo pipefail
ws="$1"
peer="$2"
dir="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "orchestrate_cli_test: $*" >&2; exit 1; }

umask 077
echo "orchestrate-test-token" > "$dir/token"
export WEIGHTSYNC_STORE_TOKEN=orchestrate-test-token
"$ws" store serve --listen 127.0.0.1:0 --token-file "$dir/token" > "$dir/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "listening on" "$dir/serve.log" && break
  sleep 0.05
done
addr="$(sed -n 's/.*listening on \(.*\)$/\1/p' "$dir/serve.log")"
[ -n "$addr" ] || fail "store did not report its address: $(cat "$dir/serve.log")"

export WEIGHTSYNC_PUSH_ORCHESTRATOR=external
"$peer" "$addr" cli trainer 0 1 1 ok 2 > "$dir/trainer.log" 2>&1 &
trainer=$!
pids+=($trainer)
"$peer" "$addr" cli inference 0 1 1 ok 2 > "$dir/inference.log" 2>&1 &
inference=$!
pids+=($inference)

"$ws" orchestrate --addr "$addr" --token-file "$dir/token" --job cli --steps 2 \
    --offer-timeout 20s > "$dir/out" 2> "$dir/err" || fail "orchestrate failed: $(cat "$dir/err")"
grep -q "push step 1: committed" "$dir/out" || fail "step 1: $(cat "$dir/out")"
grep -q "push step 2: committed" "$dir/out" || fail "step 2: $(cat "$dir/out")"
wait "$trainer" || fail "trainer: $(cat "$dir/trainer.log")"
wait "$inference" || fail "inference: $(cat "$dir/inference.log")"

# No trainer offers step 3: the orchestrator gives up at its deadline, naming what it waited for.
if "$ws" orchestrate --addr "$addr" --token-file "$dir/token" --job cli --offer-timeout 0.3 \
    > "$dir/out" 2> "$dir/err"; then
  fail "orchestrate without an offer succeeded"
fi
grep -q "DEADLINE_EXCEEDED" "$dir/err" || fail "no deadline message: $(cat "$dir/err")"
grep -q "offer after step 2" "$dir/err" || fail "does not say what it waited for: $(cat "$dir/err")"

# Open-ended (--steps 0): running out of offers ends it normally. (--store: the old name of --addr.)
"$ws" orchestrate --store "$addr" --token-file "$dir/token" --job cli --steps 0 \
    --offer-timeout 0.3 > "$dir/out" 2> "$dir/err" || fail "--steps 0: $(cat "$dir/err")"
grep -q "no offer after step 2" "$dir/out" || fail "--steps 0 output: $(cat "$dir/out")"

# Bad usage is exit code 2.
set +e
"$ws" orchestrate --addr "$addr" --token-file "$dir/token" --job "bad/job" > /dev/null 2>&1
[ $? -eq 2 ] || fail "a bad job id is not a usage error"
set -e
echo "orchestrate_cli_test: ok"
