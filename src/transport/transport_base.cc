#include "transport/transport_base.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/log.h"

namespace weightsync::transport {
namespace {

// A pid check is a syscall and a /proc read: often enough to beat any deadline, rare enough to
// cost nothing next to the writes.
constexpr auto kLivenessInterval = std::chrono::milliseconds(20);

std::string SecondsLeft(Deadline deadline) {
  const double s = std::chrono::duration<double>(deadline - Clock::now()).count();
  return StrCat(s < 0 ? 0.0 : s);
}

}  // namespace

bool ProcessAlive(const OwnerIdentity& owner) {
  if (!owner.SameMachineAs(CurrentProcessIdentity(owner.rank)) || owner.pid <= 0) return true;
  if (kill(static_cast<pid_t>(owner.pid), 0) != 0 && errno == ESRCH) return false;
  // A killed child that its parent has not reaped yet is a zombie: dead for our purposes.
  std::ifstream stat("/proc/" + std::to_string(owner.pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  if (close != std::string::npos && close + 2 < line.size()) {
    const char state = line[close + 2];
    if (state == 'Z' || state == 'X') return false;
  }
  return true;
}

void TransportBase::ReleaseAll() {
  for (auto& [id, peer] : peers_) {
    for (auto it = remotes_.begin(); it != remotes_.end();) {
      if (it->second.peer == id) {
        DoReleaseRemote(peer, it->second);
        it = remotes_.erase(it);
      } else {
        ++it;
      }
    }
    DoDisconnect(peer);
  }
  peers_.clear();
  for (auto& [id, region] : regions_) {
    DoDeregister(region);
    if (region.allocated) DoFree(region);
  }
  regions_.clear();
}

Result<RegionId> TransportBase::Register(void* address, uint64_t length, MemoryKind kind,
                                         std::string_view name) {
  if (!caps_.available) {
    return Unavailable(this->name(), " transport: ", caps_.unavailable_reason);
  }
  if (address == nullptr || length == 0) {
    return InvalidArgument("register region '", name, "': null address or zero length");
  }
  if (kind == MemoryKind::kHost && !caps_.host_memory) {
    return Unimplemented(this->name(), " transport cannot register host memory (region '", name,
                         "')");
  }
  if (kind == MemoryKind::kCuda && !caps_.gpu_memory) {
    return Unimplemented(this->name(), " transport cannot register GPU memory (region '", name,
                         "'): ", caps_.detail);
  }
  const auto start = reinterpret_cast<uintptr_t>(address);
  for (const auto& [id, r] : regions_) {
    const auto other = reinterpret_cast<uintptr_t>(r.address);
    if (start < other + r.length && other < start + length) {
      // Registering one buffer twice was a listed way to break the seed's contract.
      return AlreadyExists("register region '", name, "': overlaps registered region '", r.name,
                           "'");
    }
  }
  LocalRegion region{next_id_++, address, length, kind, std::string(name), {}, nullptr};
  WS_RETURN_IF_ERROR(DoRegister(region).WithContext(StrCat("register region '", name, "'")));
  const uint64_t id = region.id;
  regions_.emplace(id, std::move(region));
  return RegionId{id};
}

Status TransportBase::DoAllocate(LocalRegion& region) {
  constexpr uint64_t kPage = 4096;
  region.address = std::aligned_alloc(kPage, (region.length + kPage - 1) / kPage * kPage);
  if (region.address == nullptr) return ResourceExhausted("cannot allocate ", region.length, " bytes");
  return Status::Ok();
}

void TransportBase::DoFree(LocalRegion& region) { std::free(region.address); }

Result<RegionId> TransportBase::AllocateAndRegister(uint64_t length, std::string_view name) {
  if (!caps_.available) {
    return Unavailable(this->name(), " transport: ", caps_.unavailable_reason);
  }
  if (!caps_.host_memory) {
    return Unimplemented(this->name(), " transport cannot register host memory (region '", name,
                         "')");
  }
  if (length == 0) return InvalidArgument("allocate region '", name, "': zero length");
  LocalRegion region{next_id_++, nullptr, length, MemoryKind::kHost, std::string(name), {}, nullptr};
  region.allocated = true;
  WS_RETURN_IF_ERROR(DoAllocate(region).WithContext(StrCat("allocate region '", name, "'")));
  const Status registered = DoRegister(region);
  if (!registered.ok()) {
    DoFree(region);
    return registered.WithContext(StrCat("register region '", name, "'"));
  }
  const uint64_t id = region.id;
  regions_.emplace(id, std::move(region));
  return RegionId{id};
}

Result<void*> TransportBase::RegionAddress(RegionId region) const {
  auto it = regions_.find(region.value);
  if (it == regions_.end()) return NotFound("region address: no region with id ", region.value);
  return it->second.address;
}

Status TransportBase::Deregister(RegionId region) {
  auto it = regions_.find(region.value);
  if (it == regions_.end()) return NotFound("deregister: no region with id ", region.value);
  DoDeregister(it->second);
  if (it->second.allocated) DoFree(it->second);
  regions_.erase(it);
  return Status::Ok();
}

Result<RegionDescriptor> TransportBase::Export(RegionId region) {
  auto it = regions_.find(region.value);
  if (it == regions_.end()) return NotFound("export: no region with id ", region.value);
  const LocalRegion& r = it->second;
  RegionDescriptor d;
  d.backend = std::string(name());
  d.name = r.name;
  d.kind = r.kind;
  d.address = reinterpret_cast<uintptr_t>(r.address);
  d.length = r.length;
  d.region_id = r.id;
  d.owner = options_.self;
  d.key = r.key;
  return d;
}

Result<PeerAddress> TransportBase::LocalAddress() {
  if (!caps_.available) {
    return Unavailable(name(), " transport: ", caps_.unavailable_reason);
  }
  WS_ASSIGN_OR_RETURN(auto bytes, DoLocalAddress());
  return PeerAddress{std::string(name()), options_.self, std::move(bytes)};
}

Result<PeerId> TransportBase::Connect(const PeerAddress& address, Deadline deadline) {
  if (!caps_.available) {
    return Unavailable(name(), " transport: ", caps_.unavailable_reason);
  }
  if (address.backend != name()) {
    return InvalidArgument("connect to ", address.owner.ToString(), ": address is for the ",
                           address.backend, " transport, this is ", name());
  }
  // Placed in the table first: backends keep pointers into the Peer (its in-flight counter).
  const uint64_t id = next_id_++;
  Peer& peer = peers_[id];
  peer.id = id;
  peer.address = address;
  const Status connected = DoConnect(peer, deadline);
  if (!connected.ok()) {
    const std::string who = PeerName(peer);
    peers_.erase(id);
    return connected.WithContext("connect to " + who);
  }
  Log(LogLevel::kDebug, name(), " transport: connected to ", PeerName(peer));
  return PeerId{id};
}

Status TransportBase::Disconnect(PeerId id) {
  auto it = peers_.find(id.value);
  if (it == peers_.end()) return NotFound("disconnect: no peer with id ", id.value);
  for (auto r = remotes_.begin(); r != remotes_.end();) {
    if (r->second.peer == id.value) {
      DoReleaseRemote(it->second, r->second);
      r = remotes_.erase(r);
    } else {
      ++r;
    }
  }
  DoDisconnect(it->second);
  peers_.erase(it);
  return Status::Ok();
}

Result<TransportBase::Peer*> TransportBase::FindPeer(PeerId id, std::string_view op) {
  auto it = peers_.find(id.value);
  if (it == peers_.end()) {
    return NotFound(op, ": no peer with id ", id.value, " (disconnected or never connected)");
  }
  return &it->second;
}

Result<RemoteRegionId> TransportBase::Import(PeerId peer_id, const RegionDescriptor& d,
                                             uint64_t min_length) {
  WS_ASSIGN_OR_RETURN(Peer * peer, FindPeer(peer_id, "import"));
  const std::string where = StrCat("import ", d.ToString(), " from ", PeerName(*peer));
  if (d.backend != name()) {
    return InvalidArgument(where, ": descriptor is for the ", d.backend, " transport, this is ",
                           name());
  }
  if (!(d.owner == peer->address.owner)) {
    return InvalidArgument(where, ": the region belongs to ", d.owner.ToString(),
                           ", not to the connected peer");
  }
  if (d.key.empty()) {
    return FailedPrecondition(where, ": the region is not registered (no access key)");
  }
  if (d.length < min_length) {
    return OutOfRange(where, ": the region has ", d.length, " bytes, ", min_length,
                      " are needed");
  }
  if (d.kind == MemoryKind::kCuda && !caps_.gpu_memory) {
    return Unimplemented(where, ": this ", name(), " transport cannot write GPU memory");
  }
  if (!peer->failure.ok()) return peer->failure.WithContext(where);
  RemoteRegion remote{next_id_++, peer->id, d, nullptr};
  WS_RETURN_IF_ERROR(DoImport(*peer, remote).WithContext(where));
  const uint64_t id = remote.id;
  remotes_.emplace(id, std::move(remote));
  return RemoteRegionId{id};
}

template <typename Describe>
Status TransportBase::WaitStep(Peer& peer, Deadline deadline, const Describe& describe) {
  DoProgress();
  if (!peer.failure.ok()) return peer.failure;
  const auto now = Clock::now();
  if (now >= peer.next_liveness_check) {
    peer.next_liveness_check = now + kLivenessInterval;
    if (!ProcessAlive(peer.address.owner)) {
      peer.failure = Aborted(PeerName(peer), " exited while ", describe(),
                             " (", peer.in_flight, " writes in flight)");
      return peer.failure;
    }
  }
  if (now >= deadline) {
    return DeadlineExceeded(PeerName(peer), ": deadline passed while ", describe(), " (",
                            peer.in_flight, " writes in flight)");
  }
  return Status::Ok();
}

Status TransportBase::PostWrites(PeerId peer_id, std::span<const Write> writes,
                                 Deadline deadline) {
  WS_ASSIGN_OR_RETURN(Peer * peer, FindPeer(peer_id, "post writes"));
  if (!peer->failure.ok()) {
    return peer->failure.WithContext("post writes (connection failed earlier; reconnect)");
  }
  // Validate the whole batch first so a bad write never leaves the target half-written. This loop
  // and the posting loop run once per write, so what they cost is the per-write overhead that
  // small writes feel: no allocation per call (resolved_ keeps its capacity), and a region is
  // looked up again only when the id changes (consecutive writes mostly share their regions).
  resolved_.clear();
  resolved_.reserve(writes.size());
  const LocalRegion* local = nullptr;
  const RemoteRegion* remote = nullptr;
  for (size_t i = 0; i < writes.size(); ++i) {
    const Write& w = writes[i];
    if (local == nullptr || local->id != w.local.value) {
      auto l = regions_.find(w.local.value);
      if (l == regions_.end()) {
        return NotFound("write ", i, " to ", PeerName(*peer), ": no local region with id ",
                        w.local.value);
      }
      local = &l->second;
    }
    if (remote == nullptr || remote->id != w.remote.value) {
      auto r = remotes_.find(w.remote.value);
      if (r == remotes_.end() || r->second.peer != peer->id) {
        return NotFound("write ", i, " to ", PeerName(*peer), ": remote region id ",
                        w.remote.value, " was not imported from this peer");
      }
      remote = &r->second;
    }
    const RegionDescriptor& d = remote->descriptor;
    if (w.local_offset > local->length || w.length > local->length - w.local_offset) {
      return OutOfRange("write ", i, " to ", PeerName(*peer), ": local region '", local->name,
                        "' has ", local->length, " bytes, write reads [", w.local_offset, ", ",
                        w.local_offset + w.length, ")");
    }
    if (w.remote_offset > d.length || w.length > d.length - w.remote_offset) {
      return OutOfRange("write ", i, " to ", PeerName(*peer), ": ", d.ToString(),
                        " is too short for a write to [", w.remote_offset, ", ",
                        w.remote_offset + w.length, ")");
    }
    resolved_.push_back({local, remote});
  }
  const uint64_t window = static_cast<uint64_t>(std::max<int64_t>(1, options_.max_in_flight));
  for (size_t i = 0; i < writes.size(); ++i) {
    if (writes[i].length == 0) continue;
    while (peer->in_flight >= window) {
      // Some wires (UCX over TCP) complete puts only when asked to flush, so the backend is
      // nudged (DoWindowFull) before each wait instead of waiting for completions that would
      // never come on their own.
      WS_RETURN_IF_ERROR(DoWindowFull(*peer));
      WS_RETURN_IF_ERROR(WaitStep(*peer, deadline, [&] {
        return StrCat("posting write ", i, " of ", writes.size());
      }));
    }
    const Resolved& target = resolved_[i];
    const Status posted = DoPost(*peer, *target.local, *target.remote, writes[i]);
    if (!posted.ok()) {
      return posted.WithContext(StrCat("write ", i, " of ", writes.size(), " from '",
                                       target.local->name, "' to ", PeerName(*peer), " ",
                                       target.remote->descriptor.ToString()));
    }
    stats_.writes_posted++;
    stats_.bytes_posted += writes[i].length;
    stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, peer->in_flight);
  }
  const Status issued = DoEndBatch(*peer, deadline);
  if (!issued.ok()) {
    return issued.WithContext(StrCat("issuing the gathered writes of a batch of ", writes.size(),
                                     " to ", PeerName(*peer)));
  }
  return Status::Ok();
}

Status TransportBase::Flush(PeerId peer_id, Deadline deadline) {
  WS_ASSIGN_OR_RETURN(Peer * peer, FindPeer(peer_id, "flush"));
  if (!peer->failure.ok()) return peer->failure.WithContext("flush");
  WS_ASSIGN_OR_RETURN(bool done, DoStartFlush(*peer));
  while (!done) {
    WS_RETURN_IF_ERROR(WaitStep(*peer, deadline, [&] {
      return "flushing (" + SecondsLeft(deadline) + " s left)";
    }));
    done = DoFlushDone(*peer);
  }
  if (!peer->failure.ok()) return peer->failure.WithContext("flush");
  // Over shared memory a write into a dead peer's pages completes; the data is lost all the same.
  if (!ProcessAlive(peer->address.owner)) {
    peer->failure = Aborted(PeerName(*peer), " exited before its writes were flushed");
    return peer->failure;
  }
  return Status::Ok();
}

}  // namespace weightsync::transport
