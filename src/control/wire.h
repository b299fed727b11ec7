// The control-plane wire format: length-prefixed, versioned frames over TCP.
//
//   offset  size  field
//   0       4     magic "WSCP" (0x50435357 as u32 little-endian)
//   4       2     protocol version (u16 LE), kProtocolVersion
//   6       2     message type (u16 LE), MessageType
//   8       4     payload length in bytes (u32 LE), at most the receiver's limit
//   12      n     payload: fields encoded with WireWriter (integers LE, strings as u32
//   length+bytes)
//
// A frame that is malformed (wrong magic or version, unknown type, oversized, truncated, or whose
// payload does not decode exactly) is an error for that one connection, which the receiver closes;
// it never affects other connections. Receivers check the length against their limit, and grow the
// payload buffer only as its bytes arrive (optionally charged to a shared ByteBudget), so a hostile
// length field cannot make them allocate more than the peer actually sent.
//
// Threading: WireWriter/WireReader are plain values; SendFrame/ReceiveFrame use one socket and must
// not be called concurrently on the same fd.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/deadline.h"
#include "weightsync/status.h"

namespace weightsync::control {

inline constexpr uint32_t kWireMagic = 0x50435357;  // "WSCP" in memory order
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 12;
// Handshake frames are tiny; before authentication a peer may send at most this much, so an
// unauthenticated peer cannot make the server buffer a large payload.
inline constexpr uint32_t kMaxHandshakePayload = 1024;

enum class MessageType : uint16_t {
  // Handshake (control/auth.h).
  kServerHello = 1,
  kClientHello = 2,
  kServerProof = 3,
  // Store requests (control/store_protocol.h); one outstanding request per connection.
  kSet = 10,
  kGet = 11,
  kWait = 12,
  kAdd = 13,
  kCompareAndSet = 14,
  kDelete = 15,
  kList = 16,
  kDeletePrefix = 17,
  // The reply to any request, and the server's refusal during the handshake.
  kResponse = 64,
};

bool IsKnownMessageType(uint16_t type);
// The store requests (set ... delete-prefix), as opposed to handshake messages and responses.
bool IsStoreRequest(MessageType type);
std::string_view MessageTypeName(MessageType type);

// Appends little-endian integers and length-prefixed strings to a byte string.
class WireWriter {
 public:
  WireWriter& U8(uint8_t v);
  WireWriter& U16(uint16_t v);
  WireWriter& U32(uint32_t v);
  WireWriter& U64(uint64_t v);
  WireWriter& I32(int32_t v) { return U32(static_cast<uint32_t>(v)); }
  WireWriter& I64(int64_t v) { return U64(static_cast<uint64_t>(v)); }
  WireWriter& Bytes(std::string_view bytes);  // u32 length, then the bytes
  WireWriter& Raw(std::string_view bytes);    // the bytes alone (fixed-size fields)

  const std::string& data() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what WireWriter wrote; every read is bounds-checked and a short buffer is kDataLoss.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  Result<uint8_t> U8();
  Result<uint16_t> U16();
  Result<uint32_t> U32();
  Result<uint64_t> U64();
  Result<int32_t> I32();
  Result<int64_t> I64();
  // A length-prefixed string of at most `max_size` bytes.
  Result<std::string> Bytes(size_t max_size);
  Result<std::string> Raw(size_t size);

  size_t remaining() const { return data_.size() - offset_; }
  // kDataLoss when bytes are left over: a payload must decode exactly.
  Status ExpectEnd() const;

 private:
  Result<std::string_view> Take(size_t size);
  std::string_view data_;
  size_t offset_ = 0;
};

struct FrameHeader {
  MessageType type;
  uint32_t payload_size;
};

struct Frame {
  MessageType type;
  std::string payload;
};

// Validates a 12-byte header: magic, version, known type, payload_size <= max_payload.
Result<FrameHeader> DecodeFrameHeader(std::string_view header, uint32_t max_payload);
std::string EncodeFrame(MessageType type, std::string_view payload);
// One whole frame from a buffer that must hold exactly one frame (tests and the fuzzer).
Result<Frame> DecodeFrame(std::string_view bytes, uint32_t max_payload);

Status SendFrame(int fd, MessageType type, std::string_view payload, Deadline deadline);

// Memory shared by several receivers for frames still arriving: the store charges every
// connection's partial payload to one budget, so many peers announcing large messages and sending
// them slowly hold at most `limit` bytes together. Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(uint64_t limit) : limit_(limit) {}
  // False (nothing charged) when `bytes` more would exceed the limit.
  bool TryCharge(uint64_t bytes);
  void Release(uint64_t bytes) { used_.fetch_sub(bytes); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// Reads one frame. The header must start arriving before `deadline`; `cancel_fd` as in ReadExact.
// The payload buffer grows with the bytes received (at most twice what arrived, plus 64 KiB); with
// a `budget`, that buffer is charged to it while the frame is incomplete, and a frame that would
// exceed it fails with kResourceExhausted.
Result<Frame> ReceiveFrame(int fd, uint32_t max_payload, Deadline deadline, int cancel_fd = -1,
                           ByteBudget* budget = nullptr);

}  // namespace weightsync::control
