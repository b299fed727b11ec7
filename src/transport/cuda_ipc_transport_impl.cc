// The `cuda_ipc` backend: same-host GPU -> GPU writes over NVLink/PCIe with the copy engines.
//
// Export: memory from cuMemCreate with a POSIX file-descriptor handle type is shared by fd, served
// over a Unix socket (fd_passing.h) as NCCL does; other device memory (cudaMalloc/cuMemAlloc) by
// cuIpcGetMemHandle of its allocation. cuMem memory without an fd handle type (PyTorch expandable
// segments) is refused with a message saying so.
// Writes: large ones are cuMemcpyDtoDAsync round-robin over transport.cuda_streams streams (the
// copy engines), an event per write bounding the window. Writes up to
// transport.cuda_small_write_bytes are gathered per PostWrites batch and copied by one launch of
// the batched kernel (batched_copy.h) on a stream of its own; one launch counts as one write in
// flight. Without the kernel (no nvcc at build time, or a driver that refuses it) every write
// takes a copy engine.
// Built only where the CUDA toolkit headers are found (cuda.h); libcuda is loaded at run time.
#include "transport/cuda_ipc_transport.h"

#include <unistd.h>

#include <cstring>
#include <deque>

#include "core/log.h"
#include "transport/batched_copy.h"
#include "transport/cuda_api.h"
#include "transport/fd_passing.h"

namespace weightsync::transport {
namespace {

constexpr uint8_t kLegacyIpc = 1;
constexpr uint8_t kPosixFd = 2;

// Access key layout: kind u8 | offset into allocation u64 | allocation size u64 | kind-specific
// (legacy: CUipcMemHandle; fd: fd key u64 + server name).
struct CudaKey {
  uint8_t kind = 0;
  uint64_t offset = 0, alloc_size = 0;
  CUipcMemHandle ipc{};
  uint64_t fd_key = 0;
  std::string server;

  std::vector<uint8_t> Pack() const {
    std::vector<uint8_t> out(17);
    out[0] = kind;
    std::memcpy(out.data() + 1, &offset, 8);
    std::memcpy(out.data() + 9, &alloc_size, 8);
    if (kind == kLegacyIpc) {
      const auto* p = reinterpret_cast<const uint8_t*>(&ipc);
      out.insert(out.end(), p, p + sizeof(ipc));
    } else {
      const auto* p = reinterpret_cast<const uint8_t*>(&fd_key);
      out.insert(out.end(), p, p + 8);
      out.insert(out.end(), server.begin(), server.end());
    }
    return out;
  }
  static Result<CudaKey> Unpack(const std::vector<uint8_t>& in) {
    CudaKey k;
    if (in.size() < 17) return InvalidArgument("cuda_ipc access key too short");
    k.kind = in[0];
    std::memcpy(&k.offset, in.data() + 1, 8);
    std::memcpy(&k.alloc_size, in.data() + 9, 8);
    if (k.kind == kLegacyIpc && in.size() == 17 + sizeof(CUipcMemHandle)) {
      std::memcpy(&k.ipc, in.data() + 17, sizeof(k.ipc));
    } else if (k.kind == kPosixFd && in.size() > 25) {
      std::memcpy(&k.fd_key, in.data() + 17, 8);
      k.server.assign(in.begin() + 25, in.end());
    } else {
      return InvalidArgument("cuda_ipc access key of kind ", int{k.kind}, " is malformed");
    }
    return k;
  }
};

struct Mapping {
  uint8_t kind = 0;
  CUdeviceptr base = 0;  // legacy: the opened handle; fd: the reserved range
  size_t size = 0;
  CUmemGenericAllocationHandle handle = 0;
  CUdeviceptr target = 0;  // base + offset: where writes land
};

struct Pending {
  CUevent event;
  uint64_t* in_flight;  // the peer's counter; null once disconnected
  uint64_t* epoch;      // the peer's mark epoch it was posted in; null once disconnected
  Status* failure;
  uint64_t peer_id;
};

class CudaIpcTransport final : public TransportBase {
 public:
  CudaIpcTransport(TransportOptions options, Capabilities caps, const CudaApi* api, CUdevice dev,
                   CUcontext ctx)
      : TransportBase(std::move(options), std::move(caps)), api_(api), device_(dev), ctx_(ctx) {
    api_->ctx_set_current(ctx_);
    const int64_t n = std::max<int64_t>(1, options_.cuda_streams);
    for (int64_t i = 0; i < n; ++i) {
      CUstream s = nullptr;
      if (api_->stream_create(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS) streams_.push_back(s);
    }
    SetUpBatchedCopies();
    pending_.resize(streams_.size() + 1);  // the last queue: launches on kernel_stream_
  }
  ~CudaIpcTransport() override {
    api_->ctx_set_current(ctx_);
    ReleaseAll();
    if (kernel_stream_) api_->stream_synchronize(kernel_stream_);
    copier_.reset();
    if (kernel_stream_) api_->stream_destroy(kernel_stream_);
    for (CUstream s : streams_) {
      api_->stream_synchronize(s);
      api_->stream_destroy(s);
    }
    for (auto& q : pending_) for (auto& p : q) api_->event_destroy(p.event);
    for (CUevent e : free_events_) api_->event_destroy(e);
    api_->primary_ctx_release(device_);
  }
  std::string_view name() const override { return "cuda_ipc"; }

 protected:
  Status Check(CUresult r, std::string_view what) const {
    if (r == CUDA_SUCCESS) return Status::Ok();
    return Unavailable(what, ": ", api_->ErrorText(r));
  }

  Status DoRegister(LocalRegion& region) override {
    api_->ctx_set_current(ctx_);
    const auto ptr = reinterpret_cast<CUdeviceptr>(region.address);
    CUdeviceptr base = 0;
    size_t size = 0;
    WS_RETURN_IF_ERROR(Check(api_->mem_get_address_range(&base, &size, ptr),
                             "cuMemGetAddressRange (not device memory?)"));
    CudaKey key;
    key.offset = ptr - base;
    key.alloc_size = size;
    CUmemGenericAllocationHandle handle = 0;
    if (api_->mem_retain_allocation_handle(&handle, region.address) == CUDA_SUCCESS) {
      // cuMem (VMM) memory: only shareable when created with a POSIX fd handle type.
      CUmemAllocationProp prop{};
      api_->mem_get_allocation_properties(&prop, handle);
      int fd = -1;
      const bool exportable =
          (prop.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) != 0 &&
          api_->mem_export_to_shareable_handle(&fd, handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                                               0) == CUDA_SUCCESS;
      api_->mem_release(handle);
      if (!exportable) {
        return FailedPrecondition(
            "cuMem (virtual memory) allocation without a POSIX fd handle type, e.g. PyTorch "
            "expandable segments: allocate with cudaMalloc, or cuMemCreate with "
            "CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR");
      }
      if (!fd_server_) {
        WS_ASSIGN_OR_RETURN(fd_server_, FdServer::Start(StrCat("weightsync-cuda-ipc-", getpid(), "-",
                                                               reinterpret_cast<uintptr_t>(this))));
      }
      const Status published = fd_server_->Publish(region.id, fd);
      close(fd);
      WS_RETURN_IF_ERROR(published);
      key.kind = kPosixFd;
      key.fd_key = region.id;
      key.server = fd_server_->name();
    } else {
      key.kind = kLegacyIpc;
      WS_RETURN_IF_ERROR(Check(api_->ipc_get_mem_handle(&key.ipc, base), "cuIpcGetMemHandle"));
    }
    region.key = key.Pack();
    return Status::Ok();
  }

  void DoDeregister(LocalRegion& region) override {
    if (fd_server_) fd_server_->Withdraw(region.id);
  }

  Result<std::vector<uint8_t>> DoLocalAddress() override { return std::vector<uint8_t>{1}; }

  Status DoConnect(Peer& peer, Deadline) override {
    if (!peer.address.owner.SameMachineAs(options_.self)) {
      return Unavailable("cuda_ipc reaches only processes on this host; the peer is on ",
                         peer.address.owner.host);
    }
    return Status::Ok();
  }

  void DoDisconnect(Peer& peer) override {
    api_->ctx_set_current(ctx_);
    // Writes still queued target the peer's mappings: let them drain before unmapping. Gathered
    // writes of a batch that failed half-way are dropped.
    for (CUstream s : streams_) api_->stream_synchronize(s);
    if (kernel_stream_) api_->stream_synchronize(kernel_stream_);
    if (copier_ && gathered_peer_ == peer.id) copier_->Discard();
    for (auto& q : pending_) {
      for (auto& p : q) {
        if (p.peer_id == peer.id) p.in_flight = nullptr, p.epoch = nullptr, p.failure = nullptr;
      }
    }
  }

  Status DoImport(Peer&, RemoteRegion& remote) override {
    api_->ctx_set_current(ctx_);
    WS_ASSIGN_OR_RETURN(CudaKey key, CudaKey::Unpack(remote.descriptor.key));
    auto m = std::make_unique<Mapping>();
    m->kind = key.kind;
    m->size = key.alloc_size;
    if (key.kind == kLegacyIpc) {
      WS_RETURN_IF_ERROR(Check(api_->ipc_open_mem_handle(&m->base, key.ipc,
                                                         CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
                               "cuIpcOpenMemHandle"));
    } else {
      WS_ASSIGN_OR_RETURN(int fd, FetchFd(key.server, key.fd_key, DeadlineIn(options_.connect_timeout_s)));
      const CUresult r = api_->mem_import_from_shareable_handle(
          &m->handle, reinterpret_cast<void*>(static_cast<uintptr_t>(fd)),
          CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
      close(fd);
      WS_RETURN_IF_ERROR(Check(r, "cuMemImportFromShareableHandle"));
      Status s = Check(api_->mem_address_reserve(&m->base, m->size, 0, 0, 0), "cuMemAddressReserve");
      if (s.ok()) s = Check(api_->mem_map(m->base, m->size, 0, m->handle, 0), "cuMemMap");
      if (s.ok()) {
        CUmemAccessDesc access{};
        access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        access.location.id = device_;
        access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        s = Check(api_->mem_set_access(m->base, m->size, &access, 1), "cuMemSetAccess");
      }
      if (!s.ok()) {
        Unmap(*m);
        return s;
      }
    }
    if (key.offset + remote.descriptor.length > key.alloc_size) {
      Unmap(*m);
      return InvalidArgument("the region runs past its CUDA allocation");
    }
    m->target = m->base + key.offset;
    remote.backend = m.release();
    return Status::Ok();
  }

  void Unmap(Mapping& m) {
    if (m.kind == kLegacyIpc) {
      if (m.base) api_->ipc_close_mem_handle(m.base);
      return;
    }
    if (m.base) {
      api_->mem_unmap(m.base, m.size);
      api_->mem_address_free(m.base, m.size);
    }
    if (m.handle) api_->mem_release(m.handle);
  }

  void DoReleaseRemote(Peer&, RemoteRegion& remote) override {
    std::unique_ptr<Mapping> m(static_cast<Mapping*>(remote.backend));
    Unmap(*m);
  }

  Status DoPost(Peer& peer, const LocalRegion& local, const RemoteRegion& remote,
                const Write& w) override {
    if (streams_.empty()) return Unavailable("no CUDA stream could be created");
    api_->ctx_set_current(ctx_);
    const auto* m = static_cast<const Mapping*>(remote.backend);
    const CUdeviceptr src = reinterpret_cast<CUdeviceptr>(local.address) + w.local_offset;
    if (copier_ && w.length <= small_write_bytes_) {
      if (!copier_->HasRoom(w.length)) {
        WS_RETURN_IF_ERROR(LaunchGathered(peer, DeadlineIn(options_.write_timeout_s)));
      }
      copier_->Add(m->target + w.remote_offset, src, w.length);
      gathered_peer_ = peer.id;
      return Status::Ok();
    }
    const size_t s = next_stream_++ % streams_.size();
    WS_RETURN_IF_ERROR(Check(api_->memcpy_dtod_async(m->target + w.remote_offset, src, w.length,
                                                     streams_[s]),
                             "cuMemcpyDtoDAsync"));
    return Track(peer, s);
  }

  // Records an event after the work just queued on stream `s` (kernel_stream_ when s is
  // streams_.size()); it completes one write in flight of `peer`.
  Status Track(Peer& peer, size_t s) {
    CUstream stream = s < streams_.size() ? streams_[s] : kernel_stream_;
    CUevent event = nullptr;
    if (!free_events_.empty()) {
      event = free_events_.back();
      free_events_.pop_back();
    } else {
      WS_RETURN_IF_ERROR(Check(api_->event_create(&event, CU_EVENT_DISABLE_TIMING), "cuEventCreate"));
    }
    WS_RETURN_IF_ERROR(Check(api_->event_record(event, stream), "cuEventRecord"));
    pending_[s].push_back({event, &peer.in_flight, peer.current_epoch(), &peer.failure, peer.id});
    peer.in_flight++;
    (*peer.current_epoch())++;
    return Status::Ok();
  }

  void DoProgress() override {
    api_->ctx_set_current(ctx_);
    for (auto& q : pending_) {
      while (!q.empty()) {
        const CUresult r = api_->event_query(q.front().event);
        if (r == CUDA_ERROR_NOT_READY) break;
        Pending p = q.front();
        q.pop_front();
        if (p.in_flight) (*p.in_flight)--;
        if (p.epoch) (*p.epoch)--;
        if (r != CUDA_SUCCESS && p.failure && p.failure->ok()) {
          *p.failure = Unavailable("copy failed: ", api_->ErrorText(r));
        }
        free_events_.push_back(p.event);
      }
    }
  }

  // One launch of the batched kernel over the writes gathered for `peer`.
  Status LaunchGathered(Peer& peer, Deadline deadline) {
    if (!copier_ || copier_->empty()) return Status::Ok();
    WS_RETURN_IF_ERROR(copier_->Launch(deadline));
    return Track(peer, streams_.size());
  }

  Status DoEndBatch(Peer& peer, Deadline deadline) override {
    api_->ctx_set_current(ctx_);
    return LaunchGathered(peer, deadline);
  }

  Result<bool> DoStartFlush(Peer& peer) override {
    // A full window or a flush must not wait for writes that were gathered but never launched.
    api_->ctx_set_current(ctx_);
    WS_RETURN_IF_ERROR(LaunchGathered(peer, DeadlineIn(options_.write_timeout_s)));
    return peer.in_flight == 0;
  }
  bool DoFlushDone(Peer& peer) override { return peer.in_flight == 0; }
  bool DoTracksMarks() const override { return true; }

 private:
  const CudaApi* api_;
  CUdevice device_;
  CUcontext ctx_;
  std::vector<CUstream> streams_;
  std::vector<std::deque<Pending>> pending_;  // per stream, in completion order
  std::vector<CUevent> free_events_;
  size_t next_stream_ = 0;
  std::unique_ptr<FdServer> fd_server_;
  // The batched kernel for small writes; null when unavailable (then every write is a copy).
  CUstream kernel_stream_ = nullptr;
  std::unique_ptr<BatchedCopier> copier_;
  uint64_t small_write_bytes_ = 0;
  uint64_t gathered_peer_ = 0;  // whose writes the copier's current list holds

  void SetUpBatchedCopies() {
    if (options_.cuda_small_write_bytes == 0) {
      caps_.detail += ", small writes: per-write copies (transport.cuda_small_write_bytes 0)";
      return;
    }
    Status status = Check(api_->stream_create(&kernel_stream_, CU_STREAM_NON_BLOCKING),
                          "cuStreamCreate");
    if (status.ok()) {
      auto copier = BatchedCopier::Create(api_, kernel_stream_);
      if (copier.ok()) {
        copier_ = std::move(*copier);
      } else {
        status = copier.status();
      }
    }
    if (!status.ok()) {
      Log(LogLevel::kInfo, "cuda_ipc: small writes take the copy engines one by one: ",
          status.message());
      caps_.detail += StrCat(", small writes: per-write copies (", status.message(), ")");
      return;
    }
    small_write_bytes_ = std::min(options_.cuda_small_write_bytes, BatchedCopier::kMaxWriteBytes);
    caps_.detail += StrCat(", small writes (<= ", small_write_bytes_, " bytes): batched kernel");
  }
};

}  // namespace

Result<std::unique_ptr<Transport>> CreateCudaIpcTransport(const TransportOptions& options) {
  WS_ASSIGN_OR_RETURN(const CudaApi* api, LoadCudaApi());
  int count = 0;
  if (api->device_get_count(&count) != CUDA_SUCCESS || count == 0) {
    return Unavailable("unavailable: no CUDA device");
  }
  if (options.cuda_device < 0 || options.cuda_device >= count) {
    return InvalidArgument("cuda_ipc: device ", options.cuda_device, " of ", count);
  }
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  CUresult r = api->device_get(&dev, options.cuda_device);
  if (r == CUDA_SUCCESS) r = api->primary_ctx_retain(&ctx, dev);
  if (r != CUDA_SUCCESS) return Unavailable("unavailable: CUDA device ", options.cuda_device, ": ", api->ErrorText(r));
  char bus_id[32] = {};
  api->device_get_pci_bus_id(bus_id, sizeof(bus_id), dev);
  Capabilities caps;
  caps.available = true;
  caps.gpu_memory = true;
  caps.one_sided = true;
  caps.detail = StrCat("CUDA driver ", api->driver_version, ", device ", options.cuda_device,
                       " (", bus_id, ") of ", count, ", ", std::max<int64_t>(1, options.cuda_streams),
                       " streams");
  return std::unique_ptr<Transport>(
      std::make_unique<CudaIpcTransport>(options, std::move(caps), api, dev, ctx));
}

}  // namespace weightsync::transport
