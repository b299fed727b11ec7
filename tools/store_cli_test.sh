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

# --timeout bounds reaching the store too: nothing listens on port 1 (control.connect_timeout is
# 30 s, so the command must not fall back on it).
start=$(date +%s)
if "$ws" store get jobs/a/x --addr 127.0.0.1:1 --timeout 1s --token-file "$dir/token" \
    2> "$dir/err"; then
  fail "get from an address nobody listens on succeeded"
fi
[ $(( $(date +%s) - start )) -le 5 ] || fail "get --timeout 1s took $(( $(date +%s) - start )) s"
grep -q "could not connect" "$dir/err" || fail "no connect message: $(cat "$dir/err")"

# list summarises long values (size and first bytes); --full prints them whole.
long="$(head -c 30000 /dev/zero | tr '\0' 'v')"
"$ws" store set jobs/b/long "$long" --addr "$addr" --token-file "$dir/token"
line="$("$ws" store list jobs/b/ --addr "$addr" --token-file "$dir/token")"
[ "${#line}" -lt 120 ] || fail "list printed a ${#line}-byte line for a 30000-byte value"
echo "$line" | grep -q "(30000 bytes)" || fail "list summary has no size: $line"
full="$("$ws" store list jobs/b/ --full --addr "$addr" --token-file "$dir/token")"
[ "$full" = "jobs/b/long	$long" ] || fail "list --full did not print the whole value"

if "$ws" store get jobs/a/x --addr "$addr" --token-file "$dir/wrong" 2> "$dir/err"; then
  fail "a wrong token was accepted"
fi
grep -q "authentication failed" "$dir/err" || fail "no auth message: $(cat "$dir/err")"

kill -TERM "$server_pid"
wait "$server_pid" || fail "server exited with an error after SIGTERM"
server_pid=""
grep -q "authentication failed for peer 127.0.0.1:" "$dir/serve.log" ||
  fail "server did not log the refused peer: $(cat "$dir/serve.log")"

# log.level (WEIGHTSYNC_LOG_LEVEL) takes effect: at "error" the same refusal is not logged.
WEIGHTSYNC_LOG_LEVEL=error "$ws" store serve --listen 127.0.0.1:0 --token-file "$dir/token" \
  > "$dir/quiet.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$dir/quiet.log" && break
  sleep 0.05
done
addr="$(sed -n 's/.*listening on \(.*\)$/\1/p' "$dir/quiet.log")"
"$ws" store get jobs/a/x --addr "$addr" --token-file "$dir/wrong" 2> /dev/null &&
  fail "a wrong token was accepted"
kill -TERM "$server_pid"
wait "$server_pid" || fail "the quiet server exited with an error"
server_pid=""
if grep -q "authentication failed" "$dir/quiet.log"; then
  fail "WEIGHTSYNC_LOG_LEVEL=error still logged a warning: $(cat "$dir/quiet.log")"
fi
if WEIGHTSYNC_LOG_LEVEL=loud "$ws" store list x --addr "$addr" 2> "$dir/err"; then
  fail "a bad log.level was accepted"
fi
grep -qF "log.level" "$dir/err" || fail "a bad log.level is not named: $(cat "$dir/err")"
echo "store_cli_test: ok"
