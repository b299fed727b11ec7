#!/usr/bin/env bash
# Run here (the CPU build machine): fills DEST with what bench/gpu/ucx_gpu.sh needs on a GPU host
# (the device tool carries DEST; 64 MiB at most):
#   - weightsync, transport_test, transport_gpu_test, transport_test_peer (debug info stripped) and
#     the shared libraries they need beyond the C runtime (lib/), as bench/gpu/stage.sh does;
#   - RAPIDS' CUDA-enabled UCX from the libucx-cu13 wheel, in the wheel's own layout (ucx/libucx/
#     {lib,lib/ucx,bin} and ucx/libucx_cu13.libs), since its modules and tools find their
#     dependencies through RPATHs relative to that layout: libucp/libuct/libucs/libucm, the
#     modules cuda (cuda_copy, cuda_ipc), cma and ucm_cuda, ucx_info, ucx_perftest and its CUDA
#     memory module, libcudart and libgomp; only the .so.0 names (UCX loads modules as .so.0);
#   - this host's ucx_perftest and ucx_info (Debian's ucx-utils) in bin/, to run beside the GPU
#     host's system UCX, as the earlier quiet-host results did;
#   - the scripts ucx_gpu.sh and transport.sh (the device tool sends one checkout, maybe not this).
# WHEEL is the downloaded libucx_cu13-*.whl (docs/transport.md, "UCX with GPU memory").
#
#   bench/gpu/stage_ucx.sh BUILD_DIR DEST WHEEL
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 dest=$2 wheel=$3
programs=("$build/tools/weightsync" "$build/src/transport/transport_test"
          "$build/src/transport/transport_gpu_test" "$build/src/transport/transport_test_peer")
cmake --build "$build" --target weightsync transport_test transport_gpu_test transport_test_peer
rm -rf "$dest" && mkdir -p "$dest/lib" "$dest/bin"
cp "${programs[@]}" bench/gpu/ucx_gpu.sh bench/transport.sh "$dest/"
for p in "${programs[@]}"; do strip --strip-debug "$dest/$(basename "$p")"; done
for p in "${programs[@]}"; do
  ldd "$dest/$(basename "$p")" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  xargs -r -I{} cp -L {} "$dest/lib/"
cp "$(command -v ucx_perftest)" "$(command -v ucx_info)" "$dest/bin/"
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
python3 -m zipfile -e "$wheel" "$unpacked"
w=$unpacked/libucx u=$dest/ucx/libucx
mkdir -p "$u/lib/ucx" "$u/bin" "$dest/ucx/libucx_cu13.libs"
for lib in libucp libuct libucs libucm; do cp "$w/lib/$lib.so.0" "$u/lib/"; done
for module in libuct_cuda libuct_cma libucm_cuda libucx_perftest_cuda; do
  cp "$w/lib/ucx/$module.so.0" "$u/lib/ucx/"
done
cp "$w/bin/ucx_info" "$w/bin/ucx_perftest" "$u/bin/"
cp "$unpacked"/libucx_cu13.libs/* "$dest/ucx/libucx_cu13.libs/"
cp "$w/GIT_COMMIT" "$w/UCX_WHEEL_VERSION.txt" "$u/"
find "$dest/ucx" -type f \( -name '*.so*' -o -path '*/bin/*' \) -exec strip --strip-debug {} +
chmod +x "$u"/bin/* "$dest"/*.sh
du -sh "$dest"
