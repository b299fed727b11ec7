// Store requests and responses: the payloads of the store's frames (control/wire.h).
//
// Request payloads, by message type (strings are u32 length + bytes):
//   kSet            key, value, u8 flags (bit 0: ephemeral, deleted when this connection closes)
//   kGet            key                       -> value (kNotFound when absent)
//   kWait           key, u64 timeout_ms       -> value (kDeadlineExceeded when not set in time)
//   kAdd            key, i64 delta            -> i64 new value (absent counts as 0)
//   kCompareAndSet  key, u8 has_expected, expected, desired
//                                             -> u8 swapped, u8 has_current, current
//   kDelete         key                       -> u8 existed
//   kList           prefix                    -> u32 count, then count x (key, value), sorted
//   kDeletePrefix   prefix (non-empty)        -> i64 number of keys deleted
// Response payload: i32 status code, message, then the body above (only when the code is OK).
//
// Threading: plain functions on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/wire.h"
#include "weightsync/status.h"

namespace weightsync::control {

// Keys are at most this long: they are names, not data.
inline constexpr size_t kMaxKeySize = 4096;
inline constexpr uint8_t kSetEphemeral = 1;

struct StoreRequest {
  MessageType op = MessageType::kGet;
  std::string key;                      // the prefix for kList
  std::string value;                    // kSet value, kCompareAndSet desired value
  std::optional<std::string> expected;  // kCompareAndSet: nullopt means "key must be absent"
  int64_t number = 0;                   // kAdd delta, kWait timeout in milliseconds
  uint8_t flags = 0;                    // kSet: kSetEphemeral
};

struct StoreResponse {
  StatusCode code = StatusCode::kOk;
  std::string message;
  std::string body;
};

struct KeyValue {
  std::string key;
  std::string value;
  bool operator==(const KeyValue&) const = default;
};

struct CasResult {
  bool swapped = false;
  std::optional<std::string> current;  // the value after the call; nullopt when absent
};

// `max_value` bounds value fields (the connection's message limit).
std::string EncodeRequest(const StoreRequest& request);
Result<StoreRequest> DecodeRequest(const Frame& frame, size_t max_value);

std::string EncodeResponse(const StoreResponse& response);
Result<StoreResponse> DecodeResponse(const Frame& frame);

// Response bodies.
std::string EncodeInt(int64_t v);
Result<int64_t> DecodeInt(std::string_view body);
std::string EncodeValue(std::string_view value);
Result<std::string> DecodeValue(std::string_view body, size_t max_value);
std::string EncodeCas(const CasResult& result);
Result<CasResult> DecodeCas(std::string_view body, size_t max_value);
std::string EncodeBool(bool v);
Result<bool> DecodeBool(std::string_view body);
std::string EncodeList(const std::vector<KeyValue>& entries);
Result<std::vector<KeyValue>> DecodeList(std::string_view body, size_t max_value);

}  // namespace weightsync::control
