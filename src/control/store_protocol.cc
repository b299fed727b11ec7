#include "control/store_protocol.h"

#include <algorithm>
#include <cstdint>

namespace weightsync::control {

std::string EncodeRequest(const StoreRequest& request) {
  WireWriter w;
  w.Bytes(request.key);
  switch (request.op) {
    case MessageType::kSet:
      w.Bytes(request.value).U8(request.flags);
      break;
    case MessageType::kWait:
      w.U64(static_cast<uint64_t>(request.number));
      break;
    case MessageType::kAdd:
      w.I64(request.number);
      break;
    case MessageType::kCompareAndSet:
      w.U8(request.expected.has_value() ? 1 : 0)
          .Bytes(request.expected.value_or(""))
          .Bytes(request.value);
      break;
    default:
      break;
  }
  return w.Take();
}

Result<StoreRequest> DecodeRequest(const Frame& frame, size_t max_value) {
  if (!IsStoreRequest(frame.type)) {
    return DataLoss("expected a store request, got a ", MessageTypeName(frame.type), " message");
  }
  StoreRequest request;
  request.op = frame.type;
  WireReader r(frame.payload);
  WS_ASSIGN_OR_RETURN(request.key, r.Bytes(kMaxKeySize));
  if (request.key.empty() && request.op != MessageType::kList) {
    return InvalidArgument("empty key in a ", MessageTypeName(request.op), " request");
  }
  switch (request.op) {
    case MessageType::kSet: {
      WS_ASSIGN_OR_RETURN(request.value, r.Bytes(max_value));
      WS_ASSIGN_OR_RETURN(request.flags, r.U8());
      if ((request.flags & ~kSetEphemeral) != 0) {
        return DataLoss("unknown set flags ", static_cast<int>(request.flags));
      }
      break;
    }
    case MessageType::kWait: {
      WS_ASSIGN_OR_RETURN(uint64_t timeout_ms, r.U64());
      // Clamp rather than reject: a huge timeout is legal, the server bounds waits itself.
      request.number = static_cast<int64_t>(std::min<uint64_t>(timeout_ms, INT64_MAX));
      break;
    }
    case MessageType::kAdd: {
      WS_ASSIGN_OR_RETURN(request.number, r.I64());
      break;
    }
    case MessageType::kCompareAndSet: {
      WS_ASSIGN_OR_RETURN(uint8_t has_expected, r.U8());
      if (has_expected > 1)
        return DataLoss("bad has_expected flag ", static_cast<int>(has_expected));
      WS_ASSIGN_OR_RETURN(std::string expected, r.Bytes(max_value));
      if (has_expected) request.expected = std::move(expected);
      WS_ASSIGN_OR_RETURN(request.value, r.Bytes(max_value));
      break;
    }
    default:
      break;
  }
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  return request;
}

std::string EncodeResponse(const StoreResponse& response) {
  WireWriter w;
  w.I32(static_cast<int32_t>(response.code)).Bytes(response.message).Raw(response.body);
  return w.Take();
}

Result<StoreResponse> DecodeResponse(const Frame& frame) {
  if (frame.type != MessageType::kResponse) {
    return DataLoss("expected a response, got a ", MessageTypeName(frame.type), " message");
  }
  WireReader r(frame.payload);
  StoreResponse response;
  WS_ASSIGN_OR_RETURN(int32_t code, r.I32());
  if (code < 0 || code > static_cast<int32_t>(StatusCode::kInternal)) {
    return DataLoss("response carries unknown status code ", code);
  }
  response.code = static_cast<StatusCode>(code);
  WS_ASSIGN_OR_RETURN(response.message, r.Bytes(frame.payload.size()));
  WS_ASSIGN_OR_RETURN(response.body, r.Raw(r.remaining()));
  return response;
}

std::string EncodeInt(int64_t v) { return WireWriter().I64(v).Take(); }

Result<int64_t> DecodeInt(std::string_view body) {
  WireReader r(body);
  WS_ASSIGN_OR_RETURN(int64_t v, r.I64());
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}

std::string EncodeValue(std::string_view value) { return WireWriter().Bytes(value).Take(); }

Result<std::string> DecodeValue(std::string_view body, size_t max_value) {
  WireReader r(body);
  WS_ASSIGN_OR_RETURN(std::string v, r.Bytes(max_value));
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  return v;
}

std::string EncodeCas(const CasResult& result) {
  return WireWriter()
      .U8(result.swapped ? 1 : 0)
      .U8(result.current.has_value() ? 1 : 0)
      .Bytes(result.current.value_or(""))
      .Take();
}

Result<CasResult> DecodeCas(std::string_view body, size_t max_value) {
  WireReader r(body);
  CasResult result;
  WS_ASSIGN_OR_RETURN(uint8_t swapped, r.U8());
  WS_ASSIGN_OR_RETURN(uint8_t has_current, r.U8());
  WS_ASSIGN_OR_RETURN(std::string current, r.Bytes(max_value));
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  if (swapped > 1 || has_current > 1) return DataLoss("bad compare-and-set reply flags");
  result.swapped = swapped == 1;
  if (has_current) result.current = std::move(current);
  return result;
}

std::string EncodeBool(bool v) { return WireWriter().U8(v ? 1 : 0).Take(); }

Result<bool> DecodeBool(std::string_view body) {
  WireReader r(body);
  WS_ASSIGN_OR_RETURN(uint8_t v, r.U8());
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  if (v > 1) return DataLoss("bad boolean ", static_cast<int>(v));
  return v == 1;
}

std::string EncodeList(const std::vector<KeyValue>& entries) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) w.Bytes(e.key).Bytes(e.value);
  return w.Take();
}

Result<std::vector<KeyValue>> DecodeList(std::string_view body, size_t max_value) {
  WireReader r(body);
  WS_ASSIGN_OR_RETURN(uint32_t count, r.U32());
  // Each entry takes at least 8 bytes, so a count the body cannot hold is malformed; checking
  // first keeps a hostile count from reserving memory.
  if (count > r.remaining() / 8) return DataLoss("list reply claims ", count, " entries");
  std::vector<KeyValue> entries;
  entries.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    KeyValue kv;
    WS_ASSIGN_OR_RETURN(kv.key, r.Bytes(kMaxKeySize));
    WS_ASSIGN_OR_RETURN(kv.value, r.Bytes(max_value));
    entries.push_back(std::move(kv));
  }
  WS_RETURN_IF_ERROR(r.ExpectEnd());
  return entries;
}

}  // namespace weightsync::control
