// Status and Result<T>: the one error type inside weightsync.
//
// Every fallible function returns a Status (or a Result<T>, which holds either a value or a
// non-OK Status). Messages name what went wrong concretely: the tensor, the rank, the peer, the
// file and offset. Exceptions are not used for errors; they never cross the C API.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace weightsync {

// Canonical codes, after absl::StatusCode. Pick the code by what the caller can do about it:
// kUnavailable and kDeadlineExceeded may succeed on retry; kInvalidArgument, kFailedPrecondition
// and kDataLoss will not.
enum class StatusCode : int32_t {
  kOk = 0,
  kInvalidArgument = 1,     // the caller passed something wrong (shape, dtype, name, flag)
  kNotFound = 2,            // a named tensor, file, key or peer does not exist
  kAlreadyExists = 3,       // a name or rank is taken
  kOutOfRange = 4,          // an offset or index past the end
  kFailedPrecondition = 5,  // the system is not in the state the call needs
  kDataLoss = 6,            // malformed or truncated bytes (files, messages)
  kDeadlineExceeded = 7,    // a wait ran past its deadline
  kUnavailable = 8,         // a backend, library or peer cannot be reached now
  kUnauthenticated = 9,     // wrong or missing token
  kResourceExhausted = 10,  // memory, slots, size limits
  kAborted = 11,            // the operation was cancelled (peer death, shutdown)
  kUnimplemented = 12,      // a feature not built into this binary
  kInternal = 13,           // an invariant broke: a weightsync bug
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: tensor model.norm.weight: ..." (or "OK").
  std::string ToString() const;

  // Prepends context: Status(kDataLoss, "bad header").WithContext("file a.safetensors")
  // gives "file a.safetensors: bad header".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// StrCat("tensor ", name, " rank ", 3): builds messages from strings and numbers.
namespace internal {
void AppendDouble(std::string& out, double v);
inline void AppendPart(std::string& out, std::string_view s) { out.append(s); }
inline void AppendPart(std::string& out, char c) { out.push_back(c); }
template <typename T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, char>)
void AppendPart(std::string& out, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    AppendDouble(out, static_cast<double>(v));
  } else {
    out.append(std::to_string(v));
  }
}
}  // namespace internal

template <typename... Parts>
std::string StrCat(const Parts&... parts) {
  std::string out;
  (internal::AppendPart(out, parts), ...);
  return out;
}

// Shorthands that read well at the call site: return InvalidArgument("tensor ", name, ": ...").
#define WS_DEFINE_STATUS_HELPER(Name, Code)              \
  template <typename... Parts>                           \
  Status Name(const Parts&... parts) {                   \
    return Status(StatusCode::Code, StrCat(parts...));   \
  }
WS_DEFINE_STATUS_HELPER(InvalidArgument, kInvalidArgument)
WS_DEFINE_STATUS_HELPER(NotFound, kNotFound)
WS_DEFINE_STATUS_HELPER(AlreadyExists, kAlreadyExists)
WS_DEFINE_STATUS_HELPER(OutOfRange, kOutOfRange)
WS_DEFINE_STATUS_HELPER(FailedPrecondition, kFailedPrecondition)
WS_DEFINE_STATUS_HELPER(DataLoss, kDataLoss)
WS_DEFINE_STATUS_HELPER(DeadlineExceeded, kDeadlineExceeded)
WS_DEFINE_STATUS_HELPER(Unavailable, kUnavailable)
WS_DEFINE_STATUS_HELPER(Unauthenticated, kUnauthenticated)
WS_DEFINE_STATUS_HELPER(ResourceExhausted, kResourceExhausted)
WS_DEFINE_STATUS_HELPER(Aborted, kAborted)
WS_DEFINE_STATUS_HELPER(Unimplemented, kUnimplemented)
WS_DEFINE_STATUS_HELPER(Internal, kInternal)
#undef WS_DEFINE_STATUS_HELPER

// Either a T or a non-OK Status. Accessing value() of an error is a programming error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : storage_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : storage_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(storage_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(storage_);
  }
  T& value() & { return std::get<T>(storage_); }
  const T& value() const& { return std::get<T>(storage_); }
  T&& value() && { return std::get<T>(std::move(storage_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> storage_;
};

}  // namespace weightsync

#define WS_CONCAT_INNER(a, b) a##b
#define WS_CONCAT(a, b) WS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when it is not OK.
#define WS_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    ::weightsync::Status ws_status_ = (expr);         \
    if (!ws_status_.ok()) return ws_status_;          \
  } while (0)

// WS_ASSIGN_OR_RETURN(auto x, MakeX()); declares x from a Result or returns its Status.
#define WS_ASSIGN_OR_RETURN(decl, expr) \
  WS_ASSIGN_OR_RETURN_IMPL(WS_CONCAT(ws_result_, __LINE__), decl, expr)
#define WS_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  decl = std::move(tmp).value()
