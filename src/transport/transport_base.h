// TransportBase: the bookkeeping every backend shares, so each backend holds only its library calls.
//
// It owns the tables of local regions, peers and imported regions; validates imports and whole
// batches before anything is posted; keeps the in-flight window (blocking, progressing, checking
// the deadline and the peer's liveness); and turns backend failures into errors naming the peer
// and the region. Backends implement the Do* hooks.
//
// Threading contract: as Transport (one thread at a time per instance). Hooks run on the calling
// thread; backend completion callbacks must only run inside DoProgress/DoFlush on that thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "transport/transport.h"

namespace weightsync::transport {

class TransportBase : public Transport {
 public:
  const Capabilities& capabilities() const override { return caps_; }
  const OwnerIdentity& self() const override { return options_.self; }

  Result<RegionId> Register(void* address, uint64_t length, MemoryKind kind,
                            std::string_view name) override;
  Result<RegionId> AllocateAndRegister(uint64_t length, std::string_view name) override;
  Result<void*> RegionAddress(RegionId region) const override;
  Status Deregister(RegionId region) override;
  Result<RegionDescriptor> Export(RegionId region) override;
  Result<PeerAddress> LocalAddress() override;
  Result<PeerId> Connect(const PeerAddress& peer, Deadline deadline) override;
  Status Disconnect(PeerId peer) override;
  Result<RemoteRegionId> Import(PeerId peer, const RegionDescriptor& descriptor,
                                uint64_t min_length) override;
  Status PostWrites(PeerId peer, std::span<const Write> writes, Deadline deadline) override;
  Status Flush(PeerId peer, Deadline deadline) override;
  void Progress() override { DoProgress(); }
  TransportStats stats() const override { return stats_; }

 protected:
  struct LocalRegion {
    uint64_t id = 0;
    void* address = nullptr;
    uint64_t length = 0;
    MemoryKind kind = MemoryKind::kHost;
    std::string name;
    std::vector<uint8_t> key;  // filled by DoRegister
    void* backend = nullptr;   // backend handle (ucp_mem_h, ...)
    bool allocated = false;    // by DoAllocate: DoFree releases it after DoDeregister
  };
  struct Peer {
    uint64_t id = 0;
    PeerAddress address;
    uint64_t in_flight = 0;    // backend increments on a pending post, decrements on completion
    Status failure;            // set by the backend when the connection broke; sticky
    void* backend = nullptr;   // ucp_ep_h, ...
    Clock::time_point next_liveness_check{};
  };
  struct RemoteRegion {
    uint64_t id = 0;
    uint64_t peer = 0;
    RegionDescriptor descriptor;
    void* backend = nullptr;   // ucp_rkey_h, mapped pointer, ...
  };

  TransportBase(TransportOptions options, Capabilities caps)
      : options_(std::move(options)), caps_(std::move(caps)) {}
  // Backends call this first in their destructor, while their library is still loaded.
  void ReleaseAll();

  virtual Status DoRegister(LocalRegion& region) = 0;
  virtual void DoDeregister(LocalRegion& region) = 0;
  // Sets region.address to `region.length` new host bytes (and may set region.backend, which
  // DoRegister then finds filled). The default takes page-aligned ordinary memory.
  virtual Status DoAllocate(LocalRegion& region);
  // Releases what DoAllocate took; runs after DoDeregister.
  virtual void DoFree(LocalRegion& region);
  virtual Result<std::vector<uint8_t>> DoLocalAddress() = 0;
  virtual Status DoConnect(Peer& peer, Deadline deadline) = 0;
  // Must not fail: drop what can be dropped (a dead peer cannot be flushed).
  virtual void DoDisconnect(Peer& peer) = 0;
  virtual Status DoImport(Peer& peer, RemoteRegion& remote) = 0;
  virtual void DoReleaseRemote(Peer& peer, RemoteRegion& remote) = 0;
  // Posts one validated write; when it stays pending, increments peer.in_flight and decrements it
  // on completion (or sets peer.failure).
  virtual Status DoPost(Peer& peer, const LocalRegion& local, const RemoteRegion& remote,
                        const Write& write) = 0;
  virtual void DoProgress() = 0;
  // Starts the remote-completion flush; returns true when already complete. The base then
  // progresses until FlushDone(peer) is true.
  virtual Result<bool> DoStartFlush(Peer& peer) = 0;
  // Called while a peer's window of max_in_flight writes is full, before each wait for a
  // completion: makes the posted writes move on without blocking. The default starts a flush
  // (cuda_ipc launches what it gathered); a backend whose flush is a request of its own (UCX)
  // keeps at most one in flight, so a full window does not cost a flush per write.
  virtual Status DoWindowFull(Peer& peer) { return DoStartFlush(peer).status(); }
  // Called after the last write of a PostWrites batch was handed to DoPost: a backend that
  // gathers writes (cuda_ipc's batched kernel) issues what it gathered.
  virtual Status DoEndBatch(Peer& /*peer*/, Deadline /*deadline*/) { return Status::Ok(); }
  virtual bool DoFlushDone(Peer& peer) = 0;

  // "peer rank 1 (host h pid 42)".
  static std::string PeerName(const Peer& peer) { return "peer " + peer.address.owner.ToString(); }

  TransportOptions options_;
  Capabilities caps_;

 private:
  Result<Peer*> FindPeer(PeerId id, std::string_view op);
  // Progresses once and checks the peer's failure, liveness and the deadline. `describe()` says
  // what the wait is for; it is called only to word an error, because this runs once per
  // progress call (formatting a message each time cost the UCX benchmark a quarter of the
  // writer's CPU).
  template <typename Describe>
  Status WaitStep(Peer& peer, Deadline deadline, const Describe& describe);

  struct Resolved {
    const LocalRegion* local;
    const RemoteRegion* remote;
  };
  std::vector<Resolved> resolved_;  // PostWrites' validated batch, kept to reuse its capacity

  uint64_t next_id_ = 1;
  std::map<uint64_t, LocalRegion> regions_;
  std::map<uint64_t, Peer> peers_;
  std::map<uint64_t, RemoteRegion> remotes_;
  TransportStats stats_;
};

// Whether the process `owner` names still runs (only meaningful when it shares this machine;
// returns true otherwise). A zombie counts as dead.
bool ProcessAlive(const OwnerIdentity& owner);

}  // namespace weightsync::transport
