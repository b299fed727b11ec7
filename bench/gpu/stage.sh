#!/usr/bin/env bash
# Run here (the CPU build machine): copies the GPU-host programs and the shared libraries they need
# beyond libc/libstdc++ into build-gpu/, which `bench/gpu/run.sh` uses on the GPU host (the device
# tool carries it: carry=["build-gpu"]). No registry is reachable there, so nothing is built there.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --build build --target transport_gpu_test transport_test_peer convert_bench
rm -rf build-gpu && mkdir -p build-gpu/lib
cp build/src/transport/transport_gpu_test build/src/transport/transport_test_peer \
   build/bench/convert_bench build-gpu/
for lib in libxxhash.so.0 libbenchmark.so.1debian; do
  cp -L "$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')" build-gpu/lib/
done
du -sh build-gpu
