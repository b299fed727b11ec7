#!/usr/bin/env bash
# Run here: copies the Python package, its tests, examples/ and libweightsync.so with the shared
# libraries it needs beyond the C runtime into DEST, for the GPU host (no registry there, so
# nothing is built or installed there; pure-Python pytest comes along in DEST/pylib when the
# GPU image lacks it). On the GPU host, from DEST:
#   LD_LIBRARY_PATH=lib WEIGHTSYNC_LIBRARY=$PWD/lib/libweightsync.so PYTHONPATH=pylib \
#   WEIGHTSYNC_TEST_TORCH_DEVICES=cuda:0,cuda:1 WEIGHTSYNC_TEST_TORCH_TRANSPORT=cuda_ipc \
#   python3 -m pytest -q -p no:cacheprovider tests/python/test_torch.py
#
#   bench/gpu/stage_python.sh [BUILD_DIR [DEST [SITE_PACKAGES_WITH_PYTEST]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} dest=${2:-build-torch} site=${3:-}
cmake --build "$build" --target weightsync_c
rm -rf "$dest" && mkdir -p "$dest/lib" "$dest/tests" "$dest/pylib"
cp -r python examples "$dest/"
cp -r tests/python "$dest/tests/"
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
lib="$build/src/capi/libweightsync.so"
cp -L "$lib" "$dest/lib/" && strip --strip-debug "$dest/lib/libweightsync.so"
ldd "$lib" | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  xargs -r -I{} cp -L {} "$dest/lib/"
if [ -n "$site" ]; then
  for p in pytest _pytest pluggy iniconfig packaging pygments py.py; do
    [ -e "$site/$p" ] && cp -r "$site/$p" "$dest/pylib/"
  done
fi
ls "$dest/lib"
du -sh "$dest"
