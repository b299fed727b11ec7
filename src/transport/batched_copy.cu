// The cuda_ipc backend's one kernel: many small copies from one batch of PostWrites in a single
// launch. A copy engine pays a few microseconds of set-up per cuMemcpyAsync, which dominates
// writes of kilobytes; one launch over a device-side list pays it once per batch.
//
// Built with nvcc to a fatbin (sm_90 code + compute_90 PTX for newer GPUs), embedded in the
// library as bytes and loaded with cuModuleLoadData through the dlopen'ed driver: no program
// links the CUDA runtime. The entry layout must match CopyEntry in batched_copy.h.
#include <stdint.h>

struct CopyEntry {
  uint64_t src;
  uint64_t dst;
  uint64_t length;  // the host splits writes so one entry is at most a few KiB (balanced warps)
};

// One warp copies one entry: a byte head up to the vector alignment, then `T`-wide words, then a
// byte tail. Only used when src and dst are equally misaligned relative to sizeof(T).
template <typename T>
__device__ void CopyWords(const char* src, char* dst, uint64_t length, unsigned lane) {
  const uint64_t misalign = reinterpret_cast<uintptr_t>(dst) % sizeof(T);
  uint64_t head = misalign == 0 ? 0 : sizeof(T) - misalign;
  if (head > length) head = length;
  if (lane < head) dst[lane] = src[lane];
  src += head;
  dst += head;
  length -= head;
  const uint64_t words = length / sizeof(T);
  const T* s = reinterpret_cast<const T*>(src);
  T* d = reinterpret_cast<T*>(dst);
  for (uint64_t i = lane; i < words; i += 32) d[i] = s[i];
  const uint64_t done = words * sizeof(T);
  if (lane < length - done) dst[done + lane] = src[done + lane];
}

extern "C" __global__ void weightsync_batched_copy(const CopyEntry* entries, uint64_t count) {
  const unsigned lane = threadIdx.x % 32;
  const uint64_t warp = (static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const uint64_t warps = static_cast<uint64_t>(gridDim.x) * blockDim.x / 32;
  for (uint64_t i = warp; i < count; i += warps) {
    const CopyEntry e = entries[i];
    const char* src = reinterpret_cast<const char*>(e.src);
    char* dst = reinterpret_cast<char*>(e.dst);
    // Writes land at arbitrary byte offsets; the widest word both sides can share wins.
    const uint64_t skew = e.src ^ e.dst;
    if (skew % 16 == 0) {
      CopyWords<uint4>(src, dst, e.length, lane);
    } else if (skew % 8 == 0) {
      CopyWords<uint2>(src, dst, e.length, lane);
    } else if (skew % 4 == 0) {
      CopyWords<unsigned>(src, dst, e.length, lane);
    } else {
      CopyWords<char>(src, dst, e.length, lane);
    }
  }
}
