#!/usr/bin/env bash
# Run here (the CPU build machine): copies the GPU-host programs and the shared libraries they need
# beyond libc/libstdc++ into DEST (default build-gpu/), which `bench/gpu/run.sh` uses on the GPU
# host (the device tool carries it: carry=["build-gpu"]). No registry is reachable there, so
# nothing is built there. run.sh is copied too: the device tool sends one checkout, which may not
# be this one. The CUDA conversion programs (convert_gpu_test, convert_gpu_bench) exist only when
# this build found nvcc; they link the CUDA runtime statically, so they need only the driver.
#
#   bench/gpu/stage.sh [BUILD_DIR [DEST]]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} dest=${2:-build-gpu}
programs=("$build/src/transport/transport_gpu_test" "$build/src/transport/transport_test_peer"
          "$build/bench/convert_bench" "$build/tools/weightsync")
targets=(transport_gpu_test transport_test_peer convert_bench weightsync)
if grep -Eq "^CMAKE_CUDA_COMPILER:(FILEPATH|STRING)=/" "$build/CMakeCache.txt" 2>/dev/null; then
  targets+=(convert_gpu_test convert_gpu_bench demo_gpu_test)
  programs+=("$build/src/convert/cuda/convert_gpu_test" "$build/bench/convert_gpu_bench"
             "$build/src/demo/demo_gpu_test")
fi
cmake --build "$build" --target "${targets[@]}" weightsync_c
rm -rf "$dest" && mkdir -p "$dest/lib"
cp "${programs[@]}" bench/gpu/run.sh "$dest/"
cp "$build/src/capi/libweightsync.so" "$dest/lib/"  # the Python package's library (run.sh step 6)
# Debug info would push the folder past what the device tool carries (64 MiB).
for p in "${programs[@]}"; do strip --strip-debug "$dest/$(basename "$p")"; done
# Every library ldd resolves outside the C runtime and libstdc++ (the GPU image has those).
for p in "${programs[@]}"; do
  ldd "$dest/$(basename "$p")" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  xargs -r -I{} cp -L {} "$dest/lib/"
ls "$dest/lib"
du -sh "$dest"
