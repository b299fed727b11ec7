#!/usr/bin/env bash
# Run here (the CPU build machine): copies the GPU-host programs and the shared libraries they need
# beyond libc/libstdc++ into build-gpu/ (or the folder given as $1), which `bench/gpu/run.sh` uses
# on the GPU host (the device tool carries it: carry=["build-gpu"]). No registry is reachable
# there, so nothing is built there. The CUDA conversion programs (convert_gpu_test,
# convert_gpu_bench) exist only when this build found nvcc; they link the CUDA runtime
# statically, so they need only the host's driver.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-build-gpu}
targets=(transport_gpu_test transport_test_peer convert_bench)
cuda_programs=()
if grep -Eq "^CMAKE_CUDA_COMPILER:(FILEPATH|STRING)=/" build/CMakeCache.txt 2>/dev/null; then
  targets+=(convert_gpu_test convert_gpu_bench)
  cuda_programs=(build/src/convert/cuda/convert_gpu_test build/bench/convert_gpu_bench)
fi
cmake --build build --target "${targets[@]}"
rm -rf "$dest" && mkdir -p "$dest/lib"
cp build/src/transport/transport_gpu_test build/src/transport/transport_test_peer \
   build/bench/convert_bench "${cuda_programs[@]}" "$dest/"
for lib in libxxhash.so.0 libbenchmark.so.1debian; do
  cp -L "$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')" "$dest/lib/"
done
du -sh "$dest"
