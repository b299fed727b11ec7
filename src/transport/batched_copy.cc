#include "transport/batched_copy.h"

#include <algorithm>
#include <thread>

namespace weightsync::transport {
namespace {

constexpr unsigned kThreads = 256;  // 8 warps, each copying one entry at a time
// Enough warps to fill every multiprocessor of an H100/H200 several times over; more only adds
// blocks that find no entry.
constexpr uint64_t kMaxBlocks = 2048;

}  // namespace

Status BatchedCopier::Check(CUresult r, std::string_view what) const {
  if (r == CUDA_SUCCESS) return Status::Ok();
  return Unavailable("batched copy kernel: ", what, ": ", api_->ErrorText(r));
}

Result<std::unique_ptr<BatchedCopier>> BatchedCopier::Create(const CudaApi* api,
                                                             CUstream stream) {
  const auto image = BatchedCopyImage();
  if (image.empty()) return Unavailable("unavailable: built without nvcc (no kernel image)");
  std::unique_ptr<BatchedCopier> c(new BatchedCopier(api, stream));
  WS_RETURN_IF_ERROR(c->Check(api->module_load_data(&c->module_, image.data()),
                              "cuModuleLoadData (driver older than the toolkit?)"));
  WS_RETURN_IF_ERROR(c->Check(api->module_get_function(&c->kernel_, c->module_,
                                                       "weightsync_batched_copy"),
                              "cuModuleGetFunction"));
  for (Slot& slot : c->slots_) {
    void* host = nullptr;
    const size_t bytes = kCapacity * sizeof(CopyEntry);
    WS_RETURN_IF_ERROR(c->Check(api->mem_host_alloc(&host, bytes, 0), "cuMemHostAlloc"));
    slot.host = static_cast<CopyEntry*>(host);
    WS_RETURN_IF_ERROR(c->Check(api->mem_alloc(&slot.device, bytes), "cuMemAlloc"));
    WS_RETURN_IF_ERROR(c->Check(api->event_create(&slot.done, CU_EVENT_DISABLE_TIMING),
                                "cuEventCreate"));
  }
  return c;
}

BatchedCopier::~BatchedCopier() {
  // The caller synchronized the stream; nothing reads the lists any more.
  for (Slot& slot : slots_) {
    if (slot.done) api_->event_destroy(slot.done);
    if (slot.device) api_->mem_free(slot.device);
    if (slot.host) api_->mem_free_host(slot.host);
  }
  if (module_) api_->module_unload(module_);
}

bool BatchedCopier::HasRoom(uint64_t length) const {
  const uint64_t chunks = std::max<uint64_t>(1, (length + kChunkBytes - 1) / kChunkBytes);
  return count_ + chunks <= kCapacity;
}

void BatchedCopier::Add(CUdeviceptr dst, CUdeviceptr src, uint64_t length) {
  CopyEntry* list = slots_[current_].host;
  // Chunks start at the same offset on both sides, so each keeps the write's src/dst alignment.
  for (uint64_t done = 0; done < length; done += kChunkBytes) {
    list[count_++] = {src + done, dst + done, std::min(kChunkBytes, length - done)};
  }
}

Status BatchedCopier::Launch(Deadline deadline) {
  if (count_ == 0) return Status::Ok();
  Slot& slot = slots_[current_];
  WS_RETURN_IF_ERROR(Check(api_->memcpy_htod_async(slot.device, slot.host,
                                                   count_ * sizeof(CopyEntry), stream_),
                           "cuMemcpyHtoDAsync (copy list)"));
  uint64_t count = count_;
  void* params[] = {&slot.device, &count};
  const auto blocks =
      static_cast<unsigned>(std::min<uint64_t>(kMaxBlocks, (count + kThreads / 32 - 1) /
                                                               (kThreads / 32)));
  WS_RETURN_IF_ERROR(Check(api_->launch_kernel(kernel_, blocks, 1, 1, kThreads, 1, 1, 0, stream_,
                                               params, nullptr),
                           "cuLaunchKernel"));
  WS_RETURN_IF_ERROR(Check(api_->event_record(slot.done, stream_), "cuEventRecord"));
  launches_++;
  count_ = 0;
  current_ = (current_ + 1) % kSlots;
  // The next list's host buffer is rewritten from now on: its last upload and launch must be over.
  const CUevent previous = slots_[current_].done;
  for (;;) {
    const CUresult r = api_->event_query(previous);
    if (r == CUDA_SUCCESS) return Status::Ok();
    if (r != CUDA_ERROR_NOT_READY) return Check(r, "an earlier launch failed");
    if (Clock::now() >= deadline) {
      return DeadlineExceeded("batched copy kernel: an earlier launch did not finish by the "
                              "deadline");
    }
    std::this_thread::yield();
  }
}

}  // namespace weightsync::transport
