// The `cuda_ipc` backend: same-host GPU -> GPU writes over NVLink/PCIe with the copy engines.
//
// Export: device memory from cudaMalloc/cuMemAlloc is shared by cuIpcGetMemHandle of its
// allocation. cuMem (virtual memory) allocations created with a POSIX file-descriptor handle type
// are shared by fd, served over a Unix socket (fd_passing.h) as NCCL does; a region may span
// several of them mapped back to back (PyTorch's expandable segments map one cuMem handle per 2 or
// 20 MiB), and the importer maps each at the same relative place in one reserved range. cuMem
// memory without an fd handle type (vLLM's sleep-mode allocator) cannot be shared and is refused.
// Writes: large ones are cuMemcpyDtoDAsync round-robin over transport.cuda_streams streams (the
// copy engines), an event per write bounding the window. Writes up to
// transport.cuda_small_write_bytes are gathered per PostWrites batch and copied by one launch of
// the batched kernel (batched_copy.h) on a stream of its own; one launch counts as one write in
// flight. Without the kernel (no nvcc at build time, or a driver that refuses it) every write
// takes a copy engine.
// Built only where the CUDA toolkit headers are found (cuda.h); libcuda is loaded at run time.
#include <unistd.h>

#include <cstring>
#include <deque>
#include <map>

#include "core/log.h"
#include "transport/batched_copy.h"
#include "transport/cuda_api.h"
#include "transport/cuda_ipc_transport.h"
#include "transport/fd_passing.h"

namespace weightsync::transport {
namespace {

constexpr uint8_t kLegacyIpc = 1;
constexpr uint8_t kPosixFd = 2;
// The fd server's key of piece i of region r: r << kPieceBits | i.
constexpr int kPieceBits = 24;

// Access key layout: kind u8 | offset into the first allocation u64 | bytes of all allocations
// u64 | kind-specific (legacy: CUipcMemHandle; fd: region id u64, piece count u32, each piece's
// size u64, server name).
struct CudaKey {
  uint8_t kind = 0;
  uint64_t offset = 0, alloc_size = 0;
  CUipcMemHandle ipc{};
  uint64_t region_id = 0;
  std::vector<uint64_t> pieces;  // sizes of the cuMem allocations, in address order
  std::string server;

  std::vector<uint8_t> Pack() const {
    std::vector<uint8_t> out;
    Append(out, kind);
    Append(out, offset);
    Append(out, alloc_size);
    if (kind == kLegacyIpc) {
      Append(out, ipc);
    } else {
      Append(out, region_id);
      Append(out, static_cast<uint32_t>(pieces.size()));
      for (uint64_t size : pieces) Append(out, size);
      out.insert(out.end(), server.begin(), server.end());
    }
    return out;
  }
  static Result<CudaKey> Unpack(const std::vector<uint8_t>& in) {
    CudaKey k;
    size_t at = 0;
    uint32_t count = 0;
    bool ok = Read(in, at, k.kind) && Read(in, at, k.offset) && Read(in, at, k.alloc_size);
    if (ok && k.kind == kLegacyIpc) {
      ok = Read(in, at, k.ipc) && at == in.size();
    } else if (ok && k.kind == kPosixFd) {
      ok = Read(in, at, k.region_id) && Read(in, at, count) && count > 0 &&
           count <= (in.size() - at) / 8;
      uint64_t total = 0;
      for (uint32_t i = 0; ok && i < count; ++i) {
        k.pieces.emplace_back();
        ok = Read(in, at, k.pieces.back());
        total += k.pieces.back();
      }
      ok = ok && at < in.size() && total == k.alloc_size;
      if (ok) k.server.assign(in.begin() + at, in.end());
    } else {
      ok = false;
    }
    if (!ok) return InvalidArgument("cuda_ipc access key (kind ", int{k.kind}, ") is malformed");
    return k;
  }

 private:
  template <typename T>
  static void Append(std::vector<uint8_t>& out, const T& value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    out.insert(out.end(), p, p + sizeof(T));
  }
  template <typename T>
  static bool Read(const std::vector<uint8_t>& in, size_t& at, T& value) {
    if (in.size() - at < sizeof(T)) return false;
    std::memcpy(&value, in.data() + at, sizeof(T));
    at += sizeof(T);
    return true;
  }
};

struct Mapping {
  uint8_t kind = 0;
  CUdeviceptr base = 0;  // legacy: the opened handle; fd: the reserved range
  size_t size = 0;
  // fd: the imported allocations and their sizes, mapped back to back from base (the first
  // `mapped` of them).
  std::vector<std::pair<CUmemGenericAllocationHandle, size_t>> pieces;
  size_t mapped = 0;
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
    ReleaseAll();        // withdraws every region from the fd server
    fd_server_.reset();  // before the context goes: its thread exports through it
    if (kernel_stream_) api_->stream_synchronize(kernel_stream_);
    copier_.reset();
    if (kernel_stream_) api_->stream_destroy(kernel_stream_);
    for (CUstream s : streams_) {
      api_->stream_synchronize(s);
      api_->stream_destroy(s);
    }
    for (auto& q : pending_)
      for (auto& p : q) api_->event_destroy(p.event);
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
    CUmemGenericAllocationHandle handle = 0;
    if (api_->mem_retain_allocation_handle(&handle, region.address) == CUDA_SUCCESS) {
      api_->mem_release(handle);
      WS_ASSIGN_OR_RETURN(key.pieces, ShareablePieces(region, base, ptr + region.length));
      CUdeviceptr at = base;
      for (size_t i = 0; i < key.pieces.size(); ++i) {
        fd_server_->Publish(region.id << kPieceBits | i, [this, at]() { return ExportFd(at); });
        at += key.pieces[i];
        key.alloc_size += key.pieces[i];
      }
      published_pieces_[region.id] = key.pieces.size();
      key.kind = kPosixFd;
      key.region_id = region.id;
      key.server = fd_server_->name();
    } else {
      if (key.offset + region.length > size) {
        return FailedPrecondition("region '", region.name,
                                  "' spans more than one device allocation (", size - key.offset,
                                  " of its ", region.length,
                                  " bytes lie in the first): register each allocation on its own");
      }
      key.kind = kLegacyIpc;
      key.alloc_size = size;
      WS_RETURN_IF_ERROR(Check(api_->ipc_get_mem_handle(&key.ipc, base), "cuIpcGetMemHandle"));
    }
    region.key = key.Pack();
    return Status::Ok();
  }

  // The sizes of the cuMem allocations mapped back to back from `base` up to `end`, each checked
  // to be shareable by fd; starts the fd server on first use.
  Result<std::vector<uint64_t>> ShareablePieces(const LocalRegion& region, CUdeviceptr base,
                                                CUdeviceptr end) {
    std::vector<uint64_t> pieces;
    for (CUdeviceptr at = base; at < end;) {
      CUdeviceptr piece_base = 0;
      size_t piece_size = 0;
      CUmemGenericAllocationHandle handle = 0;
      if (api_->mem_get_address_range(&piece_base, &piece_size, at) != CUDA_SUCCESS ||
          piece_base != at || piece_size == 0 ||
          api_->mem_retain_allocation_handle(&handle, reinterpret_cast<void*>(at)) !=
              CUDA_SUCCESS) {
        return FailedPrecondition("region '", region.name, "' is not mapped contiguously: nothing ",
                                  "usable at byte ",
                                  at - reinterpret_cast<CUdeviceptr>(region.address),
                                  " of it (cuMem allocations must follow each other)");
      }
      CUmemAllocationProp prop{};
      api_->mem_get_allocation_properties(&prop, handle);
      api_->mem_release(handle);
      if ((prop.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) == 0) {
        return FailedPrecondition("region '", region.name,
                                  "': cuMem (virtual memory) allocation without a POSIX fd ",
                                  "handle type cannot be shared with another process (e.g. vLLM's "
                                  "sleep-mode allocator): ",
                                  "allocate it with cudaMalloc, PyTorch's caching allocator "
                                  "(expandable segments too), or ",
                                  "cuMemCreate with CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR");
      }
      if (pieces.size() == (size_t{1} << kPieceBits)) {
        return FailedPrecondition("region '", region.name, "' spans more than ",
                                  size_t{1} << kPieceBits, " cuMem allocations");
      }
      pieces.push_back(piece_size);
      at += piece_size;
    }
    if (!fd_server_) {
      WS_ASSIGN_OR_RETURN(fd_server_, FdServer::Start(StrCat("weightsync-cuda-ipc-", getpid(), "-",
                                                             reinterpret_cast<uintptr_t>(this))));
    }
    return pieces;
  }

  // Runs on the fd server's thread when an importer asks for the allocation mapped at `at`.
  Result<int> ExportFd(CUdeviceptr at) {
    api_->ctx_set_current(ctx_);
    CUmemGenericAllocationHandle handle = 0;
    WS_RETURN_IF_ERROR(
        Check(api_->mem_retain_allocation_handle(&handle, reinterpret_cast<void*>(at)),
              "cuMemRetainAllocationHandle (unmapped since registration?)"));
    int fd = -1;
    const CUresult r = api_->mem_export_to_shareable_handle(
        &fd, handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
    api_->mem_release(handle);
    WS_RETURN_IF_ERROR(Check(r, "cuMemExportToShareableHandle"));
    return fd;
  }

  void DoDeregister(LocalRegion& region) override {
    auto it = published_pieces_.find(region.id);
    if (it == published_pieces_.end()) return;
    for (size_t i = 0; i < it->second; ++i) fd_server_->Withdraw(region.id << kPieceBits | i);
    published_pieces_.erase(it);
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
    if (key.offset + remote.descriptor.length > key.alloc_size) {
      return InvalidArgument("the region runs past its CUDA allocation");
    }
    auto m = std::make_unique<Mapping>();
    m->kind = key.kind;
    m->size = key.alloc_size;
    const Status s = key.kind == kLegacyIpc
                         ? Check(api_->ipc_open_mem_handle(&m->base, key.ipc,
                                                           CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
                                 "cuIpcOpenMemHandle")
                         : MapPieces(key, *m);
    if (!s.ok()) {
      Unmap(*m);
      return s;
    }
    m->target = m->base + key.offset;
    remote.backend = m.release();
    return Status::Ok();
  }

  // Imports each allocation of an fd-shared region and maps it where it sits in the exporter's
  // range, so offsets mean the same on both sides.
  Status MapPieces(const CudaKey& key, Mapping& m) {
    const Deadline deadline = DeadlineIn(options_.connect_timeout_s);
    for (size_t i = 0; i < key.pieces.size(); ++i) {
      WS_ASSIGN_OR_RETURN(int fd, FetchFd(key.server, key.region_id << kPieceBits | i, deadline));
      CUmemGenericAllocationHandle handle = 0;
      const CUresult r = api_->mem_import_from_shareable_handle(
          &handle, reinterpret_cast<void*>(static_cast<uintptr_t>(fd)),
          CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
      close(fd);
      WS_RETURN_IF_ERROR(Check(r, "cuMemImportFromShareableHandle"));
      m.pieces.emplace_back(handle, key.pieces[i]);
    }
    WS_RETURN_IF_ERROR(
        Check(api_->mem_address_reserve(&m.base, m.size, 0, 0, 0), "cuMemAddressReserve"));
    CUdeviceptr at = m.base;
    for (const auto& [handle, size] : m.pieces) {
      WS_RETURN_IF_ERROR(Check(api_->mem_map(at, size, 0, handle, 0), "cuMemMap"));
      ++m.mapped;
      at += size;
    }
    CUmemAccessDesc access{};
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = device_;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    return Check(api_->mem_set_access(m.base, m.size, &access, 1), "cuMemSetAccess");
  }

  void Unmap(Mapping& m) {
    if (m.kind == kLegacyIpc) {
      if (m.base) api_->ipc_close_mem_handle(m.base);
      return;
    }
    CUdeviceptr at = m.base;
    for (size_t i = 0; i < m.mapped; ++i) {
      api_->mem_unmap(at, m.pieces[i].second);
      at += m.pieces[i].second;
    }
    if (m.base) api_->mem_address_free(m.base, m.size);
    for (const auto& piece : m.pieces) api_->mem_release(piece.first);
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
    WS_RETURN_IF_ERROR(
        Check(api_->memcpy_dtod_async(m->target + w.remote_offset, src, w.length, streams_[s]),
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
      WS_RETURN_IF_ERROR(
          Check(api_->event_create(&event, CU_EVENT_DISABLE_TIMING), "cuEventCreate"));
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
  std::map<uint64_t, size_t> published_pieces_;  // region id -> pieces on the fd server
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
    Status status =
        Check(api_->stream_create(&kernel_stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    if (status.ok()) {
      auto copier = BatchedCopier::Create(api_, kernel_stream_);
      if (copier.ok()) {
        copier_ = std::move(*copier);
      } else {
        status = copier.status();
      }
    }
    if (!status.ok()) {
      Log(LogLevel::kInfo,
          "cuda_ipc: small writes take the copy engines one by one: ", status.message());
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
  if (r != CUDA_SUCCESS)
    return Unavailable("unavailable: CUDA device ", options.cuda_device, ": ", api->ErrorText(r));
  char bus_id[32] = {};
  api->device_get_pci_bus_id(bus_id, sizeof(bus_id), dev);
  Capabilities caps;
  caps.available = true;
  caps.gpu_memory = true;
  caps.one_sided = true;
  caps.detail =
      StrCat("CUDA driver ", api->driver_version, ", device ", options.cuda_device, " (", bus_id,
             ") of ", count, ", ", std::max<int64_t>(1, options.cuda_streams), " streams");
  return std::unique_ptr<Transport>(
      std::make_unique<CudaIpcTransport>(options, std::move(caps), api, dev, ctx));
}

}  // namespace weightsync::transport
