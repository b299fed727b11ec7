// The `local` backend: writes within one process with memcpy. It is the reference the other
// backends are tested against and the path for a trainer and an engine sharing one process.
//
// Instances find each other through a process-wide registry, which is what lets Import refuse a
// descriptor for a region its owner never registered (or has deregistered).
#include "transport/local_transport.h"

#include <unistd.h>

#include <cstring>
#include <mutex>
#include <set>
#include <unordered_map>

namespace weightsync::transport {
namespace {

struct RegisteredRange {
  uint64_t id, address, length;
  auto operator<=>(const RegisteredRange&) const = default;
};

// instance id -> its registered regions. Guarded by a mutex: instances live on different threads.
struct Registry {
  std::mutex mutex;
  uint64_t next_instance = 1;
  std::unordered_map<uint64_t, std::set<RegisteredRange>> instances;
};

Registry& GlobalRegistry() {
  static Registry* registry = new Registry;  // never destroyed: instances may outlive statics
  return *registry;
}

class LocalTransport final : public TransportBase {
 public:
  explicit LocalTransport(TransportOptions options)
      : TransportBase(std::move(options), LocalCapabilities()) {
    Registry& reg = GlobalRegistry();
    std::lock_guard lock(reg.mutex);
    instance_ = reg.next_instance++;
    reg.instances[instance_];
  }
  ~LocalTransport() override {
    ReleaseAll();
    Registry& reg = GlobalRegistry();
    std::lock_guard lock(reg.mutex);
    reg.instances.erase(instance_);
  }
  std::string_view name() const override { return "local"; }

 protected:
  Status DoRegister(LocalRegion& region) override {
    const auto address = reinterpret_cast<uint64_t>(region.address);
    region.key.resize(16);
    std::memcpy(region.key.data(), &instance_, 8);
    std::memcpy(region.key.data() + 8, &region.id, 8);
    Registry& reg = GlobalRegistry();
    std::lock_guard lock(reg.mutex);
    reg.instances[instance_].insert({region.id, address, region.length});
    return Status::Ok();
  }
  void DoDeregister(LocalRegion& region) override {
    Registry& reg = GlobalRegistry();
    std::lock_guard lock(reg.mutex);
    reg.instances[instance_].erase(
        {region.id, reinterpret_cast<uint64_t>(region.address), region.length});
  }
  Result<std::vector<uint8_t>> DoLocalAddress() override {
    std::vector<uint8_t> bytes(8);
    std::memcpy(bytes.data(), &instance_, 8);
    return bytes;
  }
  Status DoConnect(Peer& peer, Deadline) override {
    if (peer.address.owner.pid != getpid() ||
        !peer.address.owner.SameMachineAs(options_.self)) {
      return Unavailable("the local transport writes only within one process; the peer is "
                         "another process (use ucx or cuda_ipc)");
    }
    if (peer.address.address.size() != 8) return DataLoss("local address is not 8 bytes");
    return Status::Ok();
  }
  void DoDisconnect(Peer&) override {}
  Status DoImport(Peer&, RemoteRegion& remote) override {
    const RegionDescriptor& d = remote.descriptor;
    if (d.key.size() != 16) return InvalidArgument("local access key is not 16 bytes");
    uint64_t instance = 0, id = 0;
    std::memcpy(&instance, d.key.data(), 8);
    std::memcpy(&id, d.key.data() + 8, 8);
    Registry& reg = GlobalRegistry();
    std::lock_guard lock(reg.mutex);
    auto it = reg.instances.find(instance);
    if (it == reg.instances.end() || !it->second.contains({id, d.address, d.length})) {
      return FailedPrecondition("the region is not registered by its owner (deregistered, or "
                                "the descriptor does not match the registration)");
    }
    return Status::Ok();
  }
  void DoReleaseRemote(Peer&, RemoteRegion&) override {}
  Status DoPost(Peer&, const LocalRegion& local, const RemoteRegion& remote,
                const Write& w) override {
    std::memmove(reinterpret_cast<void*>(remote.descriptor.address + w.remote_offset),
                 static_cast<const char*>(local.address) + w.local_offset, w.length);
    return Status::Ok();
  }
  void DoProgress() override {}
  Result<bool> DoStartFlush(Peer&) override { return true; }
  bool DoFlushDone(Peer&) override { return true; }
  bool DoTracksMarks() const override { return true; }  // every write completes when posted

 private:
  static Capabilities LocalCapabilities() {
    Capabilities caps;
    caps.available = true;
    caps.host_memory = true;
    caps.one_sided = true;
    caps.detail = "memcpy within one process";
    return caps;
  }
  uint64_t instance_ = 0;
};

}  // namespace

std::unique_ptr<Transport> CreateLocalTransport(const TransportOptions& options) {
  return std::make_unique<LocalTransport>(options);
}

}  // namespace weightsync::transport
