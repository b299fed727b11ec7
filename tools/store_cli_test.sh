#!/usr/bin/env bash
# Exercises `weightsync store` end to end on loopback: serve, set, get, list, a get that times out,
# and a wrong token. Usage: store_cli_test.sh PATH/TO/weightsync
set -euo pipefail
ws="$1"
dir="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "store_cli_test: $*" >&2; exit 1; }

umask 077
echo "cli-test-token" > "$dir/token"
echo "wrong-token" > "$dir/wrong"
"$ws" store serve --listen 127.0.0.1:0 --token-file "$dir/token" > "$dir/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$dir/serve.log" && break
  sleep 0.05
done
addr="$(sed -n 's/.*listening on \(.*\)$/\1/p' "$dir/serve.log")"
[ -n "$addr" ] || fail "server did not report its address: $(cat "$dir/serve.log")"

"$ws" store set jobs/a/x hello --addr "$addr" --token-file "$dir/token"
[ "$("$ws" store get jobs/a/x --addr "$addr" --token-file "$dir/token")" = hello ] || fail "get"
WEIGHTSYNC_STORE_TOKEN=cli-test-token "$ws" store set jobs/a/y 2 --addr "$addr"
[ "$("$ws" store list jobs/a/ --addr "$addr" --token-file "$dir/token" | wc -l)" = 2 ] ||
  fail "list"

if "$ws" store get missing --timeout 0.2 --addr "$addr" --token-file "$dir/token" 2> "$dir/err"; then
  fail "get of a missing key succeeded"
fi
grep -q "DEADLINE_EXCEEDED" "$dir/err" || fail "no deadline message: $(cat "$dir/err")"
grep -q "missing" "$dir/err" || fail "the message does not name the key: $(cat "$dir/err")"

if "$ws" store get jobs/a/x --addr "$addr" --token-file "$dir/wrong" 2> "$dir/err"; then
  fail "a wrong token was accepted"
fi
grep -q "authentication failed" "$dir/err" || fail "no auth message: $(cat "$dir/err")"

kill -TERM "$server_pid"
wait "$server_pid" || fail "server exited with an error after SIGTERM"
server_pid=""
grep -q "authentication failed for peer 127.0.0.1:" "$dir/serve.log" ||
  fail "server did not log the refused peer: $(cat "$dir/serve.log")"
echo "store_cli_test: ok"
