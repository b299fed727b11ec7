#!/usr/bin/env bash
# Fails when libweightsync.so exports a dynamic symbol that is not part of the C API (ws_*), or
# when it exports none at all.
set -euo pipefail
lib="$1"
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^$' | sed 's/@.*//')
[ -n "$symbols" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(echo "$symbols" | grep -v '^ws_' || true)
if [ -n "$bad" ]; then
  echo "exported symbols outside the C API:"; echo "$bad" | head -20; exit 1
fi
echo "$(echo "$symbols" | wc -l) ws_* symbols exported, nothing else"
