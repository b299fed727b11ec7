// The batched small-copy kernel of the cuda_ipc backend (batched_copy.cu), as embedded device code,
// and BatchedCopier, which gathers small writes into a device-side list and copies them with one
// launch. Built only where cuda.h was found; the kernel image is empty where nvcc was not.
//
// Threading: a BatchedCopier belongs to one transport and is used from its thread only.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <span>
#include <vector>

#include "transport/cuda_api.h"
#include "transport/transport.h"

namespace weightsync::transport {

// The fatbin (sm_90 code, compute_90 PTX) compiled at build time; empty when nvcc was absent.
std::span<const unsigned char> BatchedCopyImage();

// One copy of the list the kernel reads; the layout of CopyEntry in batched_copy.cu.
struct CopyEntry {
  uint64_t src = 0;
  uint64_t dst = 0;
  uint64_t length = 0;
};
static_assert(sizeof(CopyEntry) == 24);

class BatchedCopier {
 public:
  // Entries per launch, and the longest entry: larger writes are split so every warp of the
  // kernel gets a similar share (one warp copies one entry).
  static constexpr uint64_t kCapacity = 16384;
  static constexpr uint64_t kChunkBytes = 8192;
  // Writes the caller may gather: kCapacity / 4 chunks, so a list never holds less than 4 writes.
  static constexpr uint64_t kMaxWriteBytes = kCapacity / 4 * kChunkBytes;

  // kUnavailable (the caller then copies each write on its own) when the build has no kernel
  // image or the driver cannot load it. The context of `stream` must be current.
  static Result<std::unique_ptr<BatchedCopier>> Create(const CudaApi* api, CUstream stream);
  ~BatchedCopier();
  BatchedCopier(const BatchedCopier&) = delete;
  BatchedCopier& operator=(const BatchedCopier&) = delete;

  // Whether a write of `length` bytes still fits in the list being gathered.
  bool HasRoom(uint64_t length) const;
  // Gathers one copy (length <= kMaxWriteBytes, HasRoom(length)).
  void Add(CUdeviceptr dst, CUdeviceptr src, uint64_t length);
  bool empty() const { return count_ == 0; }
  // Drops what was gathered (the batch failed and its peer is being disconnected).
  void Discard() { count_ = 0; }
  // Uploads the list and launches the kernel on the stream (the caller records its own event
  // after it), then waits, up to `deadline`, until the next list buffer is no longer read by an
  // earlier launch.
  Status Launch(Deadline deadline);
  uint64_t launches() const { return launches_; }

 private:
  // Lists rotate so that gathering the next one overlaps the previous launches.
  static constexpr int kSlots = 4;
  struct Slot {
    CopyEntry* host = nullptr;  // pinned, so the upload is asynchronous
    CUdeviceptr device = 0;
    CUevent done = nullptr;     // recorded after the launch that reads this slot
  };
  BatchedCopier(const CudaApi* api, CUstream stream) : api_(api), stream_(stream) {}
  Status Check(CUresult r, std::string_view what) const;

  const CudaApi* api_;
  CUstream stream_;
  CUmodule module_ = nullptr;
  CUfunction kernel_ = nullptr;
  Slot slots_[kSlots];
  int current_ = 0;
  uint64_t count_ = 0;
  uint64_t launches_ = 0;
  int blocks_limit_ = 1;
};

}  // namespace weightsync::transport
