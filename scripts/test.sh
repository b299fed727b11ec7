#!/usr/bin/env bash
# Sets up a fresh machine (scripts/bootstrap.sh), then runs every test, in parallel where safe.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
ctest --test-dir build --output-on-failure --parallel "$(nproc)" --timeout 600
