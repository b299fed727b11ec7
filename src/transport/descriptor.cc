#include "transport/descriptor.h"

#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace weightsync::transport {
namespace {

// Formats: magic, version, payload, XXH64(magic..payload). Little-endian (every host we run on).
constexpr uint32_t kRegionMagic = 0x52535357;   // "WSSR"
constexpr uint32_t kAddressMagic = 0x41535357;  // "WSSA"
constexpr uint32_t kVersion = 1;
// Upper bounds on variable fields: a corrupted length must not turn into a huge allocation.
constexpr uint64_t kMaxField = 1 << 20;

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void PutBytes(std::span<const uint8_t> bytes) {
    Put<uint64_t>(bytes.size());
    out_.insert(out_.end(), bytes.begin(), bytes.end());
  }
  void PutString(std::string_view s) {
    PutBytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  std::vector<uint8_t> Finish() {
    Put<uint64_t>(XXH64(out_.data(), out_.size(), 0));
    return std::move(out_);
  }

 private:
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  Status CheckFrame(uint32_t magic) {
    if (bytes_.size() < 16) return DataLoss(what_, ": ", bytes_.size(), " bytes is too short");
    uint64_t sum;
    std::memcpy(&sum, bytes_.data() + bytes_.size() - 8, 8);
    if (XXH64(bytes_.data(), bytes_.size() - 8, 0) != sum) {
      return DataLoss(what_, ": checksum mismatch (corrupted or truncated)");
    }
    bytes_ = bytes_.first(bytes_.size() - 8);
    uint32_t got_magic = 0, version = 0;
    WS_RETURN_IF_ERROR(Get(got_magic));
    WS_RETURN_IF_ERROR(Get(version));
    if (got_magic != magic) return DataLoss(what_, ": wrong magic (not this kind of message)");
    if (version != kVersion) {
      return DataLoss(what_, ": format version ", version, ", this build reads ", kVersion);
    }
    return Status::Ok();
  }
  template <typename T>
  Status Get(T& v) {
    if (bytes_.size() - pos_ < sizeof(T)) return DataLoss(what_, ": truncated at byte ", pos_);
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status GetBytes(std::vector<uint8_t>& out) {
    uint64_t n = 0;
    WS_RETURN_IF_ERROR(Get(n));
    if (n > kMaxField || n > bytes_.size() - pos_) {
      return DataLoss(what_, ": field of ", n, " bytes overruns the message at byte ", pos_);
    }
    out.assign(bytes_.begin() + pos_, bytes_.begin() + pos_ + n);
    pos_ += n;
    return Status::Ok();
  }
  Status GetString(std::string& out) {
    std::vector<uint8_t> raw;
    WS_RETURN_IF_ERROR(GetBytes(raw));
    out.assign(raw.begin(), raw.end());
    return Status::Ok();
  }
  Status Done() {
    if (pos_ != bytes_.size()) return DataLoss(what_, ": ", bytes_.size() - pos_, " extra bytes");
    return Status::Ok();
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string_view what_;
  size_t pos_ = 0;
};

void PutOwner(Writer& w, const OwnerIdentity& o) {
  w.PutString(o.host);
  w.Put(o.boot_id);
  w.Put(o.pid_ns);
  w.Put(o.pid);
  w.Put(o.rank);
}

Status GetOwner(Reader& r, OwnerIdentity& o) {
  WS_RETURN_IF_ERROR(r.GetString(o.host));
  WS_RETURN_IF_ERROR(r.Get(o.boot_id));
  WS_RETURN_IF_ERROR(r.Get(o.pid_ns));
  WS_RETURN_IF_ERROR(r.Get(o.pid));
  return r.Get(o.rank);
}

uint64_t BootIdHash() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return XXH64(id.data(), id.size(), 0);
}

}  // namespace

std::string_view MemoryKindName(MemoryKind kind) {
  return kind == MemoryKind::kCuda ? "cuda" : "host";
}

std::string OwnerIdentity::ToString() const {
  return StrCat("rank ", rank, " (host ", host, " pid ", pid, ")");
}

bool OwnerIdentity::SameMachineAs(const OwnerIdentity& other) const {
  return host == other.host && boot_id == other.boot_id && pid_ns == other.pid_ns;
}

OwnerIdentity CurrentProcessIdentity(int32_t rank) {
  OwnerIdentity id;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  id.host = host;
  id.boot_id = BootIdHash();
  struct stat st {};
  if (stat("/proc/self/ns/pid", &st) == 0) id.pid_ns = st.st_ino;
  id.pid = getpid();
  id.rank = rank;
  return id;
}

std::vector<uint8_t> RegionDescriptor::Serialize() const {
  Writer w;
  w.Put(kRegionMagic);
  w.Put(kVersion);
  w.PutString(backend);
  w.PutString(name);
  w.Put(static_cast<uint8_t>(kind));
  w.Put(address);
  w.Put(length);
  w.Put(region_id);
  PutOwner(w, owner);
  w.PutBytes(key);
  return w.Finish();
}

Result<RegionDescriptor> RegionDescriptor::Deserialize(std::span<const uint8_t> bytes) {
  Reader r(bytes, "region descriptor");
  WS_RETURN_IF_ERROR(r.CheckFrame(kRegionMagic));
  RegionDescriptor d;
  uint8_t kind = 0;
  WS_RETURN_IF_ERROR(r.GetString(d.backend));
  WS_RETURN_IF_ERROR(r.GetString(d.name));
  WS_RETURN_IF_ERROR(r.Get(kind));
  WS_RETURN_IF_ERROR(r.Get(d.address));
  WS_RETURN_IF_ERROR(r.Get(d.length));
  WS_RETURN_IF_ERROR(r.Get(d.region_id));
  WS_RETURN_IF_ERROR(GetOwner(r, d.owner));
  WS_RETURN_IF_ERROR(r.GetBytes(d.key));
  WS_RETURN_IF_ERROR(r.Done());
  if (kind > static_cast<uint8_t>(MemoryKind::kCuda)) {
    return DataLoss("region descriptor '", d.name, "': unknown memory kind ", int{kind});
  }
  d.kind = static_cast<MemoryKind>(kind);
  if (d.address + d.length < d.address) {
    return DataLoss("region descriptor '", d.name, "': address + length overflows");
  }
  return d;
}

std::string RegionDescriptor::ToString() const {
  std::ostringstream s;
  s << "region '" << name << "' (" << MemoryKindName(kind) << ", " << length << " bytes at 0x"
    << std::hex << address << std::dec << ", id " << region_id << ", " << owner.ToString()
    << ")";
  return s.str();
}

std::vector<uint8_t> PeerAddress::Serialize() const {
  Writer w;
  w.Put(kAddressMagic);
  w.Put(kVersion);
  w.PutString(backend);
  PutOwner(w, owner);
  w.PutBytes(address);
  return w.Finish();
}

Result<PeerAddress> PeerAddress::Deserialize(std::span<const uint8_t> bytes) {
  Reader r(bytes, "peer address");
  WS_RETURN_IF_ERROR(r.CheckFrame(kAddressMagic));
  PeerAddress a;
  WS_RETURN_IF_ERROR(r.GetString(a.backend));
  WS_RETURN_IF_ERROR(GetOwner(r, a.owner));
  WS_RETURN_IF_ERROR(r.GetBytes(a.address));
  WS_RETURN_IF_ERROR(r.Done());
  return a;
}

}  // namespace weightsync::transport
