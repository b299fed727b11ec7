#!/usr/bin/env bash
# README's main job: sets up this machine and builds (scripts/bootstrap.sh), then runs
# `weightsync demo`: 2 trainer and 2 inference processes on this machine, the embedded store on
# loopback, 3 pushes of a GLM-5-shaped model, every destination byte verified on every inference
# rank. Extra arguments go to `weightsync demo` (see `build/tools/weightsync demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec build/tools/weightsync demo "$@"
