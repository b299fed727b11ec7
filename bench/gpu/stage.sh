#!/usr/bin/env bash
# Run here (the CPU build machine): copies the GPU-host programs and the shared libraries they need
# beyond libc/libstdc++ into DEST (default build-gpu/), which `bench/gpu/run.sh` uses on the GPU host
# (the device tool carries it: carry=["build-gpu"]). No registry is reachable there, so nothing is
# built there. run.sh is copied too: the device tool sends one checkout, which may not be this one.
#
#   bench/gpu/stage.sh [BUILD_DIR [DEST]]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} dest=${2:-build-gpu}
cmake --build "$build" --target transport_gpu_test transport_test_peer convert_bench weightsync
rm -rf "$dest" && mkdir -p "$dest/lib"
cp "$build/src/transport/transport_gpu_test" "$build/src/transport/transport_test_peer" \
   "$build/bench/convert_bench" "$build/tools/weightsync" bench/gpu/run.sh "$dest/"
# Debug info would push the folder past what the device tool carries (64 MiB).
strip --strip-debug "$dest"/transport_gpu_test "$dest"/transport_test_peer "$dest"/convert_bench \
      "$dest"/weightsync
# Every library ldd resolves outside the C runtime and libstdc++ (the GPU image has those).
for bin in "$dest"/transport_gpu_test "$dest"/transport_test_peer "$dest"/convert_bench \
           "$dest"/weightsync; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  xargs -r -I{} cp -L {} "$dest/lib/"
ls "$dest/lib"
du -sh "$dest"
