// The `ucx` backend: a UCP worker, one endpoint per peer, packed rkeys, ucp_put_nbx and explicit
// progress. UCX picks the wire: shared memory (posix, sysv, cma) and TCP on one host, RC/DC verbs
// across hosts, GPU memory when its build has CUDA support (queried at run time).
#include "transport/ucx_transport.h"

#include <cstdlib>
#include <filesystem>
#include <list>
#include <memory>

#include "core/log.h"
#include "transport/net_interface.h"
#include "transport/nic_topology.h"
#include "transport/ucx_api.h"

namespace weightsync::transport {
namespace {

// Completion state of one endpoint. It lives on the heap, apart from the base's Peer, because UCX
// may complete requests after Disconnect (a force close cancels them): callbacks then find
// `peer == nullptr` and only count down.
struct UcxEndpoint {
  const UcxApi* api = nullptr;
  ucp_ep_h ep = nullptr;
  TransportBase* owner = nullptr;
  uint64_t* in_flight = nullptr;  // the base's Peer::in_flight, null once disconnected
  Status* failure = nullptr;      // the base's Peer::failure, null once disconnected
  std::string peer_name;
  uint64_t outstanding = 0;       // requests UCX still owns
  uint64_t flushes_pending = 0;   // flush requests not yet complete
  bool peer_failure_handling = true;  // created with UCP_ERR_HANDLING_MODE_PEER

  void Fail(ucs_status_t status, std::string_view what) {
    if (failure != nullptr && failure->ok()) {
      *failure = Unavailable(peer_name, ": ", what, ": ", api->StatusText(status));
    }
  }
};

void PutDone(void* request, ucs_status_t status, void* user_data) {
  auto* e = static_cast<UcxEndpoint*>(user_data);
  e->outstanding--;
  if (e->in_flight != nullptr) (*e->in_flight)--;
  if (status != UCS_OK) e->Fail(status, "write failed");
  e->api->request_free(request);
}

void FlushDone(void* request, ucs_status_t status, void* user_data) {
  auto* e = static_cast<UcxEndpoint*>(user_data);
  e->outstanding--;
  e->flushes_pending--;
  if (status != UCS_OK) e->Fail(status, "flush failed");
  e->api->request_free(request);
}

void EndpointError(void* arg, ucp_ep_h, ucs_status_t status) {
  static_cast<UcxEndpoint*>(arg)->Fail(status, "connection failed");
}

// One thread drives a worker (the Transport threading contract).
ucs_status_t CreateWorker(const UcxApi* api, ucp_context_h context, ucp_worker_h* worker) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  return api->worker_create(context, &params, worker);
}

class UcxTransport final : public TransportBase {
 public:
  UcxTransport(TransportOptions options, Capabilities caps, const UcxApi* api,
               ucp_context_h context, ucp_worker_h worker)
      : TransportBase(std::move(options), std::move(caps)),
        api_(api),
        context_(context),
        worker_(worker) {}

  ~UcxTransport() override {
    ReleaseAll();
    // Give cancelled requests of closed endpoints a moment to complete before the worker goes
    // (abandoned endpoints never complete theirs; the worker's destruction releases them).
    const Deadline deadline = DeadlineIn(1.0);
    auto settled = [this] {
      for (const Closed& c : closed_) {
        if (!c.abandoned) return false;
      }
      return true;
    };
    while (!settled() && Clock::now() < deadline) DoProgress();
    if (worker_) api_->worker_destroy(worker_);
    api_->cleanup(context_);
  }

  std::string_view name() const override { return "ucx"; }

 protected:
  // UCX's allocator takes shared memory on one host (posix/sysv), which a writer's puts reach with
  // a plain copy; see Transport::AllocateAndRegister.
  Status DoAllocate(LocalRegion& region) override {
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                        UCP_MEM_MAP_PARAM_FIELD_FLAGS;
    params.address = nullptr;
    params.length = region.length;
    params.flags = UCP_MEM_MAP_ALLOCATE;
    ucp_mem_h memh = nullptr;
    ucs_status_t st = api_->mem_map(context_, &params, &memh);
    if (st != UCS_OK) return ResourceExhausted("ucp_mem_map (allocate): ", api_->StatusText(st));
    ucp_mem_attr_t attr{};
    attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
    st = api_->mem_query(memh, &attr);
    if (st != UCS_OK) {
      api_->mem_unmap(context_, memh);
      return Unavailable("ucp_mem_query: ", api_->StatusText(st));
    }
    region.address = attr.address;
    region.backend = memh;
    return Status::Ok();
  }
  // ucp_mem_unmap in DoDeregister already released UCX's allocation.
  void DoFree(LocalRegion&) override {}

  Status DoRegister(LocalRegion& region) override {
    ucp_mem_h memh = static_cast<ucp_mem_h>(region.backend);  // set when UCX allocated it
    ucs_status_t st = UCS_OK;
    if (memh == nullptr) {
      ucp_mem_map_params_t params{};
      params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
      params.address = region.address;
      params.length = region.length;
      if (region.kind == MemoryKind::kCuda) {
        params.field_mask |= UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
        params.memory_type = UCS_MEMORY_TYPE_CUDA;
      }
      st = api_->mem_map(context_, &params, &memh);
      if (st != UCS_OK) return Unavailable("ucp_mem_map: ", api_->StatusText(st));
    }
    void* packed = nullptr;
    size_t packed_size = 0;
    st = api_->rkey_pack(context_, memh, &packed, &packed_size);
    if (st != UCS_OK) {
      api_->mem_unmap(context_, memh);
      return Unavailable("ucp_rkey_pack: ", api_->StatusText(st));
    }
    const auto* bytes = static_cast<const uint8_t*>(packed);
    region.key.assign(bytes, bytes + packed_size);
    api_->rkey_buffer_release(packed);
    region.backend = memh;
    return Status::Ok();
  }

  void DoDeregister(LocalRegion& region) override {
    api_->mem_unmap(context_, static_cast<ucp_mem_h>(region.backend));
  }

  Result<std::vector<uint8_t>> DoLocalAddress() override {
    address_published_ = true;
    ucp_address_t* address = nullptr;
    size_t length = 0;
    const ucs_status_t st = api_->worker_get_address(worker_, &address, &length);
    if (st != UCS_OK) return Unavailable("ucp_worker_get_address: ", api_->StatusText(st));
    const auto* bytes = reinterpret_cast<const uint8_t*>(address);
    std::vector<uint8_t> out(bytes, bytes + length);
    api_->worker_release_address(worker_, address);
    return out;
  }

  Status DoConnect(Peer& peer, Deadline) override {
    if (tainted_ && live_endpoints_ == 0 && !address_published_) {
      WS_RETURN_IF_ERROR(RecreateWorker());
    } else if (tainted_ && live_endpoints_ == 0) {
      Log(LogLevel::kWarning, "ucx: an endpoint to a dead peer without peer-failure handling may "
          "stall shared-memory puts to ", PeerName(peer), "; the worker is kept because its "
          "address was given to writers");
    }
    auto e = std::make_unique<UcxEndpoint>();
    e->api = api_;
    e->owner = this;
    e->peer_name = PeerName(peer);
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = reinterpret_cast<const ucp_address_t*>(peer.address.address.data());
    // PEER mode: a dead peer fails its requests (and calls EndpointError) instead of hanging.
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &EndpointError;
    params.err_handler.arg = e.get();
    ucs_status_t st = api_->ep_create(worker_, &params, &e->ep);
    if (st != UCS_OK) {
      // UCX 1.13's posix and sysv shared memory have no peer-failure handler, so PEER mode finds
      // no transport. Without it a dead peer is still caught on this machine by the base's pid
      // liveness check; across hosts every RDMA transport supports PEER mode.
      params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
      st = api_->ep_create(worker_, &params, &e->ep);
      if (st != UCS_OK) return Unavailable("ucp_ep_create: ", api_->StatusText(st));
      Log(LogLevel::kDebug, "ucx: ", e->peer_name, ": no transport handles peer failure; "
          "relying on the liveness check");
      e->peer_failure_handling = false;
    }
    e->in_flight = &peer.in_flight;
    e->failure = &peer.failure;
    peer.backend = e.release();
    live_endpoints_++;
    return Status::Ok();
  }

  // A fresh worker in place of one that holds abandoned endpoints. Why: the shared-memory
  // transports queue sends that found a peer's FIFO full on one arbiter per interface, and a dead
  // peer's queue, which nothing can purge safely without peer-failure handling, stays at its head
  // and stops every other peer's queued sends: puts to the next peer never complete. Only done
  // with no endpoint left and no address handed out, so no peer sees the change; registrations
  // belong to the context and stay valid.
  Status RecreateWorker() {
    const Deadline deadline = DeadlineIn(1.0);
    auto settled = [this] {
      for (const Closed& c : closed_) {
        if (!c.abandoned) return false;
      }
      return true;
    };
    while (!settled() && Clock::now() < deadline) DoProgress();
    api_->worker_destroy(worker_);  // releases the abandoned endpoints and their requests
    closed_.clear();
    tainted_ = false;
    worker_ = nullptr;
    const ucs_status_t st = CreateWorker(api_, context_, &worker_);
    if (st != UCS_OK) {
      caps_.available = false;
      caps_.unavailable_reason = StrCat("unavailable: ucp_worker_create: ", api_->StatusText(st));
      return Unavailable(caps_.unavailable_reason);
    }
    Log(LogLevel::kInfo, "ucx: new worker after a peer died on an endpoint without peer-failure "
        "handling");
    return Status::Ok();
  }

  void DoDisconnect(Peer& peer) override {
    auto* e = static_cast<UcxEndpoint*>(peer.backend);
    peer.backend = nullptr;
    e->in_flight = nullptr;
    e->failure = nullptr;
    live_endpoints_--;
    const bool peer_gone = !peer.failure.ok() || !ProcessAlive(peer.address.owner);
    if (!e->peer_failure_handling && peer_gone) {
      // A force close is only defined for endpoints with peer-failure handling on both sides
      // (ucp_ep_close_nbx docs): on UCX 1.13's shared memory it cancels through transports that
      // cannot cancel, and left the worker unable to complete puts to the *next* peer (the
      // reconnect hang of docs/transport.md). A flushing close never completes either, the dead
      // peer draining nothing. So the endpoint is abandoned: never used or closed again, its
      // completion state kept until ucp_worker_destroy releases it with the worker, which the
      // next Connect replaces when it can (RecreateWorker).
      Log(LogLevel::kDebug, "ucx: ", e->peer_name, " is gone and its endpoint has no peer-failure "
          "handling: abandoning the endpoint");
      closed_.push_back({std::unique_ptr<UcxEndpoint>(e), nullptr, /*abandoned=*/true});
      tainted_ = true;
      return;
    }
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    // With peer-failure handling: force, since the peer may be dead and a flushing close would
    // wait for it. Without it (peer alive): a flushing close, the only defined one.
    param.flags = e->peer_failure_handling ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void* request = api_->ep_close_nbx(e->ep, &param);
    closed_.push_back({std::unique_ptr<UcxEndpoint>(e), request, /*abandoned=*/false});
    DoProgress();
  }

  Status DoImport(Peer& peer, RemoteRegion& remote) override {
    auto* e = static_cast<UcxEndpoint*>(peer.backend);
    ucp_rkey_h rkey = nullptr;
    const ucs_status_t st = api_->ep_rkey_unpack(e->ep, remote.descriptor.key.data(), &rkey);
    if (st != UCS_OK) {
      return InvalidArgument("ucp_ep_rkey_unpack refused the access key (not a registration "
                             "of this peer?): ", api_->StatusText(st));
    }
    remote.backend = rkey;
    return Status::Ok();
  }

  void DoReleaseRemote(Peer&, RemoteRegion& remote) override {
    api_->rkey_destroy(static_cast<ucp_rkey_h>(remote.backend));
  }

  Status DoPost(Peer& peer, const LocalRegion& local, const RemoteRegion& remote,
                const Write& w) override {
    auto* e = static_cast<UcxEndpoint*>(peer.backend);
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                         UCP_OP_ATTR_FIELD_MEMH | UCP_OP_ATTR_FIELD_MEMORY_TYPE;
    param.cb.send = &PutDone;
    param.user_data = e;
    param.memh = static_cast<ucp_mem_h>(local.backend);
    param.memory_type =
        local.kind == MemoryKind::kCuda ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
    ucs_status_ptr_t request =
        api_->put_nbx(e->ep, static_cast<const char*>(local.address) + w.local_offset, w.length,
                      remote.descriptor.address + w.remote_offset,
                      static_cast<ucp_rkey_h>(remote.backend), &param);
    if (request == nullptr) return Status::Ok();  // completed in place
    if (UCS_PTR_IS_ERR(request)) {
      e->Fail(UCS_PTR_STATUS(request), "ucp_put_nbx failed");
      return peer.failure;
    }
    e->outstanding++;
    peer.in_flight++;
    return Status::Ok();
  }

  void DoProgress() override {
    if (worker_ == nullptr) return;  // RecreateWorker failed; the transport is unavailable
    // Bounded: a worker that keeps reporting events (retrying sends that cannot leave) must not
    // hold the caller past its deadline, which only the caller's wait loop checks.
    for (int i = 0; i < 64 && api_->worker_progress(worker_) != 0; ++i) {
    }
    for (auto it = closed_.begin(); it != closed_.end();) {
      if (it->abandoned) {
        ++it;
        continue;
      }
      if (it->close_request != nullptr && !UCS_PTR_IS_ERR(it->close_request) &&
          api_->request_check_status(it->close_request) != UCS_INPROGRESS) {
        api_->request_free(it->close_request);
        it->close_request = nullptr;
      }
      if (UCS_PTR_IS_ERR(it->close_request)) it->close_request = nullptr;
      if (it->close_request == nullptr && it->endpoint->outstanding == 0) {
        it = closed_.erase(it);
      } else {
        ++it;
      }
    }
  }

  Result<bool> DoStartFlush(Peer& peer) override {
    auto* e = static_cast<UcxEndpoint*>(peer.backend);
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = &FlushDone;
    param.user_data = e;
    ucs_status_ptr_t request = api_->ep_flush_nbx(e->ep, &param);
    if (request == nullptr) return true;
    if (UCS_PTR_IS_ERR(request)) {
      e->Fail(UCS_PTR_STATUS(request), "ucp_ep_flush_nbx failed");
      return peer.failure;
    }
    e->outstanding++;
    e->flushes_pending++;
    return false;
  }

  // One flush at a time while the window is full: each ucp_ep_flush_nbx is a request UCX tracks
  // (and over TCP a message), and a window that stays full would otherwise start one per write.
  // A flush covers every put posted before it, so once it completes with the window still full,
  // the next call starts another.
  Status DoWindowFull(Peer& peer) override {
    if (static_cast<UcxEndpoint*>(peer.backend)->flushes_pending > 0) return Status::Ok();
    return DoStartFlush(peer).status();
  }

  bool DoFlushDone(Peer& peer) override {
    return static_cast<UcxEndpoint*>(peer.backend)->flushes_pending == 0;
  }

 private:
  struct Closed {
    std::unique_ptr<UcxEndpoint> endpoint;
    void* close_request;
    bool abandoned;  // closed by ucp_worker_destroy, not by us (see DoDisconnect)
  };
  const UcxApi* api_;
  ucp_context_h context_;
  ucp_worker_h worker_;
  std::list<Closed> closed_;
  uint64_t live_endpoints_ = 0;
  bool tainted_ = false;            // holds an abandoned endpoint
  bool address_published_ = false;  // LocalAddress() was asked: peers may know this worker
};

// The interface that reaches the job's store, or "" when there is no store host or no answer.
std::string InterfaceReachingTheStore(const TransportOptions& options) {
  if (options.rendezvous_host.empty()) return "";
  auto found = InterfaceReaching(options.rendezvous_host);
  if (!found.ok()) {
    Log(LogLevel::kWarning, "ucx: net devices left to UCX (its listeners take every interface): ",
        found.status().message());
    return "";
  }
  Log(LogLevel::kInfo, "ucx: net device ", *found, " for ", options.self.ToString(),
      ": the interface that reaches the job's store at ", options.rendezvous_host);
  return *found;
}

// The UCX_NET_DEVICES value to force, or "" for UCX's own choice; logs the decision. UCX's TCP
// transport listens on every device it uses, so a job names its devices unless the user did.
std::string ChooseNetDevices(const TransportOptions& options) {
  if (!options.ucx_net_devices.empty()) {
    Log(LogLevel::kInfo, "ucx: net devices ", options.ucx_net_devices,
        " (transport.ucx_net_devices)");
    return options.ucx_net_devices;
  }
  if (const char* env = std::getenv("UCX_NET_DEVICES"); env != nullptr && *env != '\0') {
    Log(LogLevel::kInfo, "ucx: net devices ", env, " (UCX_NET_DEVICES)");
    return "";
  }
  if (!options.gpu_pci_bus_id.empty()) {
    auto choice = ChooseClosestNic(options.sysfs_root, options.gpu_pci_bus_id);
    if (choice.ok()) {
      Log(LogLevel::kInfo, "ucx: net device ", choice->nic.UcxDevice(), " for ",
          options.self.ToString(), ": ", choice->reason);
      return choice->nic.UcxDevice();
    }
    Log(LogLevel::kInfo, "ucx: no RDMA NIC for the GPU: ", choice.status().message());
  }
  return InterfaceReachingTheStore(options);
}

// Why a UCX context without the CUDA memory type cannot take GPU memory: the words of the error a
// GPU registration gets, and of `weightsync info`.
std::string NoCudaReason(const UcxApi& api, const TransportOptions& options) {
  if (!options.ucx_tls.empty() && options.ucx_tls.find("cuda") == std::string::npos) {
    return StrCat("transport.ucx_tls=", options.ucx_tls, " names no CUDA transport (add "
                  "cuda_copy,cuda_ipc)");
  }
  // UCX looks for its modules in <libucs's folder>/ucx (unless UCX_MODULE_DIR says otherwise).
  const std::filesystem::path modules =
      std::filesystem::path(api.ucs_library.empty() ? api.library : api.ucs_library)
          .parent_path() / "ucx";
  std::error_code ec;
  for (const char* name : {"libuct_cuda.so.0", "libuct_cuda.so"}) {
    if (std::filesystem::exists(modules / name, ec)) {
      return StrCat("UCX's CUDA module ", (modules / name).string(), " is there but reported no "
                    "CUDA memory (no CUDA driver or GPU here: it needs libcuda.so.1 and "
                    "libnvidia-ml.so.1)");
    }
  }
  return StrCat("this UCX build (", api.library, ") has no CUDA support: no libuct_cuda in ",
                modules.string(), "; point transport.ucx_library_dir at a CUDA-enabled UCX, e.g. "
                "the lib folder of the libucx-cu13 wheel (docs/transport.md)");
}

}  // namespace

Result<std::unique_ptr<Transport>> CreateUcxTransport(const TransportOptions& options) {
  WS_ASSIGN_OR_RETURN(const UcxApi* api, LoadUcxApi(options.ucx_library_dir));
  ucp_config_t* config = nullptr;
  ucs_status_t st = api->config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return Unavailable("unavailable: ucp_config_read: ", api->StatusText(st));
  const std::string net_devices = ChooseNetDevices(options);
  Status modify_status;
  auto modify = [&](const char* key, const std::string& value) {
    if (value.empty() || !modify_status.ok()) return;
    const ucs_status_t s = api->config_modify(config, key, value.c_str());
    if (s != UCS_OK) {
      modify_status = InvalidArgument("ucx: cannot set ", key, "=", value, ": ", api->StatusText(s));
    }
  };
  modify("TLS", options.ucx_tls);
  modify("NET_DEVICES", net_devices);
  if (!modify_status.ok()) {
    api->config_release(config);
    return modify_status;
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA;
  ucp_context_h context = nullptr;
  st = api->init_version(UCP_API_MAJOR, UCP_API_MINOR, &params, config, &context);
  api->config_release(config);
  if (st != UCS_OK) return Unavailable("unavailable: ucp_init: ", api->StatusText(st));

  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  const bool cuda = api->context_query(context, &attr) == UCS_OK &&
                    (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;

  ucp_worker_h worker = nullptr;
  st = CreateWorker(api, context, &worker);
  if (st != UCS_OK) {
    api->cleanup(context);
    return Unavailable("unavailable: ucp_worker_create: ", api->StatusText(st));
  }
  Capabilities caps;
  caps.available = true;
  caps.host_memory = true;
  caps.gpu_memory = cuda;
  caps.cross_host = true;
  caps.one_sided = true;
  // UCX over TCP emulates puts with messages the target must receive; shared memory and verbs do
  // not need it, but which wire UCX picks is its decision, so targets always progress.
  caps.target_progress = true;
  caps.detail = StrCat("UCX ", api->major, ".", api->minor, ".", api->release, " (", api->library,
                       "), GPU memory ", cuda ? "yes" : StrCat("no (", NoCudaReason(*api, options), ")"),
                       ", TLS ", options.ucx_tls.empty() ? "UCX default" : options.ucx_tls,
                       ", net devices ", net_devices.empty() ? "UCX default" : net_devices);
  return std::unique_ptr<Transport>(
      std::make_unique<UcxTransport>(options, std::move(caps), api, context, worker));
}

}  // namespace weightsync::transport
