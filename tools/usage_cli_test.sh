#!/usr/bin/env bash
# Usage errors exit 2 in every command (docs/cli.md), whatever CLI11's own code for the error is
# (105 validation, 106 required, 109 extras), and an unknown command is named with the known ones.
# Help and --version exit 0. Usage: usage_cli_test.sh PATH/TO/weightsync
set -uo pipefail
ws="$1"
failures=0
expect() {  # expect CODE TEXT ARGS...: exit code CODE and TEXT on stderr
  local code="$1" text="$2"
  shift 2
  local err
  err=$("$ws" "$@" 2>&1 >/dev/null)
  local got=$?
  if [ "$got" -ne "$code" ] || [[ "$err" != *"$text"* ]]; then
    echo "usage_cli_test: weightsync $*: exit $got (want $code), stderr: $err" >&2
    failures=$((failures + 1))
  fi
}
expect 2 "unknown command 'bogus'; the commands are info, convert, verify, store, plan" bogus
expect 2 "A subcommand is required"
expect 2 "--model is required" convert
expect 2 "not expected: --bogus-flag" convert --model m --input a --output b --bogus-flag
expect 2 "not expected: extra" info extra
expect 2 "KEY is required" store get
expect 2 "" plan --trainers x
expect 2 "--log-level" --log-level loud info
expect 2 "" demo --pushes 0
expect 0 "" --help
expect 0 "" demo --help
expect 0 "" --version
if ! "$ws" demo --help | grep -q -- "--pushes INT:INT in \[1 - 1000\]=3"; then
  echo "usage_cli_test: demo --help does not show the defaults" >&2
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] && echo "usage_cli_test: every usage error exits 2"
exit $((failures > 0))
