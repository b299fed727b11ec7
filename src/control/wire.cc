#include "control/wire.h"

#include <algorithm>
#include <cstdio>

#include "control/socket.h"

namespace weightsync::control {
namespace {

uint64_t LoadLE(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

void StoreLE(std::string& out, uint64_t v, int size) {
  for (int i = 0; i < size; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

bool IsStoreRequest(MessageType type) {
  switch (type) {
    case MessageType::kSet:
    case MessageType::kGet:
    case MessageType::kWait:
    case MessageType::kAdd:
    case MessageType::kCompareAndSet:
    case MessageType::kDelete:
    case MessageType::kList:
    case MessageType::kDeletePrefix:
      return true;
    default:
      return false;
  }
}

bool IsKnownMessageType(uint16_t type) {
  const auto message = static_cast<MessageType>(type);
  return IsStoreRequest(message) || message == MessageType::kServerHello ||
         message == MessageType::kClientHello || message == MessageType::kServerProof ||
         message == MessageType::kResponse;
}

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kServerHello:
      return "server-hello";
    case MessageType::kClientHello:
      return "client-hello";
    case MessageType::kServerProof:
      return "server-proof";
    case MessageType::kSet:
      return "set";
    case MessageType::kGet:
      return "get";
    case MessageType::kWait:
      return "wait";
    case MessageType::kAdd:
      return "add";
    case MessageType::kCompareAndSet:
      return "compare-and-set";
    case MessageType::kDelete:
      return "delete";
    case MessageType::kList:
      return "list";
    case MessageType::kDeletePrefix:
      return "delete-prefix";
    case MessageType::kResponse:
      return "response";
  }
  return "unknown";
}

WireWriter& WireWriter::U8(uint8_t v) {
  StoreLE(out_, v, 1);
  return *this;
}
WireWriter& WireWriter::U16(uint16_t v) {
  StoreLE(out_, v, 2);
  return *this;
}
WireWriter& WireWriter::U32(uint32_t v) {
  StoreLE(out_, v, 4);
  return *this;
}
WireWriter& WireWriter::U64(uint64_t v) {
  StoreLE(out_, v, 8);
  return *this;
}
WireWriter& WireWriter::Bytes(std::string_view bytes) {
  U32(static_cast<uint32_t>(bytes.size()));
  out_.append(bytes);
  return *this;
}
WireWriter& WireWriter::Raw(std::string_view bytes) {
  out_.append(bytes);
  return *this;
}

Result<std::string_view> WireReader::Take(size_t size) {
  if (size > remaining()) {
    return DataLoss("message field needs ", size, " bytes at offset ", offset_, " but only ",
                    remaining(), " remain");
  }
  std::string_view out = data_.substr(offset_, size);
  offset_ += size;
  return out;
}

Result<uint8_t> WireReader::U8() {
  WS_ASSIGN_OR_RETURN(auto bytes, Take(1));
  return static_cast<uint8_t>(LoadLE(bytes));
}
Result<uint16_t> WireReader::U16() {
  WS_ASSIGN_OR_RETURN(auto bytes, Take(2));
  return static_cast<uint16_t>(LoadLE(bytes));
}
Result<uint32_t> WireReader::U32() {
  WS_ASSIGN_OR_RETURN(auto bytes, Take(4));
  return static_cast<uint32_t>(LoadLE(bytes));
}
Result<uint64_t> WireReader::U64() {
  WS_ASSIGN_OR_RETURN(auto bytes, Take(8));
  return LoadLE(bytes);
}
Result<int32_t> WireReader::I32() {
  WS_ASSIGN_OR_RETURN(uint32_t v, U32());
  return static_cast<int32_t>(v);
}
Result<int64_t> WireReader::I64() {
  WS_ASSIGN_OR_RETURN(uint64_t v, U64());
  return static_cast<int64_t>(v);
}

Result<std::string> WireReader::Bytes(size_t max_size) {
  WS_ASSIGN_OR_RETURN(uint32_t size, U32());
  if (size > max_size) {
    return DataLoss("message field of ", size, " bytes exceeds its limit of ", max_size);
  }
  WS_ASSIGN_OR_RETURN(auto bytes, Take(size));
  return std::string(bytes);
}

Result<std::string> WireReader::Raw(size_t size) {
  WS_ASSIGN_OR_RETURN(auto bytes, Take(size));
  return std::string(bytes);
}

Status WireReader::ExpectEnd() const {
  if (remaining() != 0) return DataLoss("message has ", remaining(), " unexpected trailing bytes");
  return Status::Ok();
}

Result<FrameHeader> DecodeFrameHeader(std::string_view header, uint32_t max_payload) {
  if (header.size() != kFrameHeaderSize) {
    return DataLoss("frame header is ", header.size(), " bytes, expected ", kFrameHeaderSize);
  }
  WireReader reader(header);
  WS_ASSIGN_OR_RETURN(uint32_t magic, reader.U32());
  WS_ASSIGN_OR_RETURN(uint16_t version, reader.U16());
  WS_ASSIGN_OR_RETURN(uint16_t type, reader.U16());
  WS_ASSIGN_OR_RETURN(uint32_t size, reader.U32());
  if (magic != kWireMagic) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%08x", magic);
    return DataLoss("bad magic ", hex, ": not a weightsync control peer");
  }
  if (version != kProtocolVersion) {
    return DataLoss("peer speaks control protocol version ", version, ", this build speaks ",
                    kProtocolVersion);
  }
  if (!IsKnownMessageType(type)) return DataLoss("unknown message type ", type);
  if (size > max_payload) {
    return ResourceExhausted("message of ", size, " bytes exceeds the limit of ", max_payload,
                             " bytes (control.max_message_size)");
  }
  return FrameHeader{static_cast<MessageType>(type), size};
}

std::string EncodeFrame(MessageType type, std::string_view payload) {
  WireWriter writer;
  writer.U32(kWireMagic)
      .U16(kProtocolVersion)
      .U16(static_cast<uint16_t>(type))
      .U32(static_cast<uint32_t>(payload.size()))
      .Raw(payload);
  return writer.Take();
}

Result<Frame> DecodeFrame(std::string_view bytes, uint32_t max_payload) {
  if (bytes.size() < kFrameHeaderSize) {
    return DataLoss("truncated frame: ", bytes.size(), " bytes, header alone is ",
                    kFrameHeaderSize);
  }
  WS_ASSIGN_OR_RETURN(FrameHeader header,
                      DecodeFrameHeader(bytes.substr(0, kFrameHeaderSize), max_payload));
  if (bytes.size() - kFrameHeaderSize != header.payload_size) {
    return DataLoss("frame declares ", header.payload_size, " payload bytes but carries ",
                    bytes.size() - kFrameHeaderSize);
  }
  return Frame{header.type, std::string(bytes.substr(kFrameHeaderSize))};
}

Status SendFrame(int fd, MessageType type, std::string_view payload, Deadline deadline) {
  if (payload.size() > UINT32_MAX) {
    return ResourceExhausted("message of ", payload.size(), " bytes cannot be framed");
  }
  return WriteAll(fd, EncodeFrame(type, payload), deadline);
}

bool ByteBudget::TryCharge(uint64_t bytes) {
  uint64_t used = used_.load();
  do {
    if (bytes > limit_ || used > limit_ - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  return true;
}

namespace {

// The first piece of a payload read before the buffer grows again: small messages are read in one
// piece, large ones in pieces that double, so the buffer never runs far ahead of the bytes sent.
constexpr size_t kFirstPayloadPiece = 64 << 10;

// Releases what a receive charged to its budget, however it ends.
class BudgetCharge {
 public:
  explicit BudgetCharge(ByteBudget* budget) : budget_(budget) {}
  ~BudgetCharge() {
    if (budget_ != nullptr) budget_->Release(charged_);
  }
  BudgetCharge(const BudgetCharge&) = delete;
  BudgetCharge& operator=(const BudgetCharge&) = delete;
  Status Add(uint64_t bytes, const FrameHeader& header) {
    if (budget_ == nullptr) return Status::Ok();
    if (!budget_->TryCharge(bytes)) {
      return ResourceExhausted("a ", header.payload_size, "-byte ", MessageTypeName(header.type),
                               " message does not fit: ", budget_->used(), " of ", budget_->limit(),
                               " bytes are held for messages still arriving");
    }
    charged_ += bytes;
    return Status::Ok();
  }

 private:
  ByteBudget* budget_;
  uint64_t charged_ = 0;
};

Status ReadPayload(int fd, const FrameHeader& header, std::string& payload, Deadline deadline,
                   int cancel_fd, ByteBudget* budget) {
  BudgetCharge charge(budget);
  size_t received = 0;
  while (received < header.payload_size) {
    const size_t piece =
        std::min<size_t>(header.payload_size - received, std::max(kFirstPayloadPiece, received));
    WS_RETURN_IF_ERROR(charge.Add(piece, header));
    payload.resize(received + piece);
    WS_RETURN_IF_ERROR(
        ReadExact(fd, payload.data() + received, piece, deadline, cancel_fd)
            .WithContext(StrCat("at byte ", received, " of a ", header.payload_size, "-byte ",
                                MessageTypeName(header.type), " message")));
    received += piece;
  }
  return Status::Ok();
}

}  // namespace

Result<Frame> ReceiveFrame(int fd, uint32_t max_payload, Deadline deadline, int cancel_fd,
                           ByteBudget* budget) {
  char header_bytes[kFrameHeaderSize];
  WS_RETURN_IF_ERROR(ReadExact(fd, header_bytes, sizeof(header_bytes), deadline, cancel_fd));
  WS_ASSIGN_OR_RETURN(
      FrameHeader header,
      DecodeFrameHeader(std::string_view(header_bytes, sizeof(header_bytes)), max_payload));
  Frame frame{header.type, std::string()};
  Status status = ReadPayload(fd, header, frame.payload, deadline, cancel_fd, budget);
  if (!status.ok()) {
    // The header arrived, so a close now truncates the message rather than ending the stream.
    if (status.code() == StatusCode::kUnavailable) {
      return DataLoss("truncated message: connection closed (", status.message(), ")");
    }
    return status;
  }
  return frame;
}

}  // namespace weightsync::control
