#!/usr/bin/env bash
# Installs everything weightsync needs on a fresh Debian/Ubuntu machine, then builds it into build/.
# Safe to re-run: installs only what is missing and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

packages=(build-essential cmake ninja-build pkg-config git libgtest-dev libgmock-dev
          libbenchmark-dev nlohmann-json3-dev libcli11-dev libxxhash-dev libssl-dev libcpp-httplib-dev
          python3 python3-venv python3-pip
          libucx-dev ucx-utils)  # UCX headers for the ucx transport (libucp is dlopen'ed), ucx_perftest
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python tools for the interoperability tests (the reference `safetensors` package, numpy).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
# vLLM for tests/python/test_vllm.py, without its own torch and GPU packages (see the file).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-vllm.txt

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DWEIGHTSYNC_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build build --parallel "$(nproc)"
