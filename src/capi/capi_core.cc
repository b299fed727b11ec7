// Library-wide entry points: version, errors, configuration, tensor descriptions.
#include <algorithm>
#include <cstring>

#include "agent/cluster_env.h"
#include "capi/capi_internal.h"
#include "core/log.h"

namespace weightsync::capi {
namespace {

// The C enums are the library's, renumbered by hand: these catch a library enum that moved.
static_assert(WS_INVALID_ARGUMENT == static_cast<int>(StatusCode::kInvalidArgument));
static_assert(WS_DEADLINE_EXCEEDED == static_cast<int>(StatusCode::kDeadlineExceeded));
static_assert(WS_INTERNAL == static_cast<int>(StatusCode::kInternal));
static_assert(WS_DTYPE_F16 == static_cast<int>(DType::kF16));
static_assert(WS_DTYPE_BF16 == static_cast<int>(DType::kBF16));
static_assert(WS_DTYPE_F8E4M3 == static_cast<int>(DType::kF8E4M3));
static_assert(WS_DTYPE_F8E8M0 == static_cast<int>(DType::kF8E8M0));
static_assert(WS_DEVICE_CUDA == static_cast<int>(DeviceKind::kCuda));

thread_local std::string thread_error;

std::mutex config_mu;
std::unique_ptr<Config> config;  // created from the environment at first use

// log.level takes effect whenever the configuration is (re)made or the option is set.
Status ApplyLogLevel(const Config& c) {
  WS_ASSIGN_OR_RETURN(LogLevel level, ParseLogLevel(c.Value("log.level")));
  SetLogLevel(level);
  return Status::Ok();
}

Status EnsureConfigLocked() {
  if (config) return Status::Ok();
  WS_ASSIGN_OR_RETURN(Config c, Config::FromEnvironment());
  WS_RETURN_IF_ERROR(ApplyLogLevel(c).WithContext("option log.level"));
  config = std::make_unique<Config>(std::move(c));
  return Status::Ok();
}

constexpr int kMaxDims = 8;

}  // namespace

void ErrorSlot::Set(const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  message_ = message;
}

const char* ErrorSlot::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return message_.c_str();
}

ws_status Report(const Status& status, ErrorSlot* slot) {
  if (status.ok()) return WS_OK;
  // Assigning may throw bad_alloc; the code is what matters then, so keep going without text.
  try {
    thread_error = status.message();
    if (slot != nullptr) slot->Set(status.message());
  } catch (...) {
  }
  return static_cast<ws_status>(status.code());
}

Status NotNull(const void* pointer, const char* what) {
  if (pointer == nullptr) return InvalidArgument(what, " must not be NULL");
  return Status::Ok();
}

Result<Config> GlobalConfig() {
  std::lock_guard<std::mutex> lock(config_mu);
  WS_RETURN_IF_ERROR(EnsureConfigLocked());
  return *config;
}

Result<TensorView> ViewOf(const ws_tensor& tensor, std::string_view what, bool need_data) {
  const std::string name = tensor.name != nullptr ? tensor.name : "";
  const std::string label = StrCat(what, " tensor ", name.empty() ? "(unnamed)" : name);
  if (name.empty()) return InvalidArgument(label, ": name must be a non-empty string");
  if (tensor.dtype < 0 || tensor.dtype > WS_DTYPE_F8E8M0) {
    return InvalidArgument(label, ": unknown dtype value ", tensor.dtype);
  }
  if (tensor.ndim < 0 || tensor.ndim > kMaxDims || (tensor.ndim > 0 && tensor.shape == nullptr)) {
    return InvalidArgument(label, ": ndim ", tensor.ndim, " with shape ",
                           tensor.shape ? "set" : "NULL", " (0..", kMaxDims, " dimensions)");
  }
  if (tensor.device_type != WS_DEVICE_CPU && tensor.device_type != WS_DEVICE_CUDA) {
    return InvalidArgument(label, ": unknown device type ", tensor.device_type);
  }
  TensorView view;
  view.data = tensor.data;
  view.dtype = static_cast<DType>(tensor.dtype);
  view.device = {tensor.device_type == WS_DEVICE_CUDA ? DeviceKind::kCuda : DeviceKind::kCpu,
                 tensor.device_type == WS_DEVICE_CUDA ? tensor.device_index : 0};
  view.shape.assign(tensor.shape, tensor.shape + tensor.ndim);
  for (int64_t d : view.shape) {
    if (d < 0) return InvalidArgument(label, ": negative size in shape ", ShapeToString(view.shape));
  }
  if (tensor.strides != nullptr) view.strides.assign(tensor.strides, tensor.strides + tensor.ndim);
  if (need_data && tensor.data == nullptr && view.numel() > 0) {
    return InvalidArgument(label, " (", view.ToString(), "): data is NULL");
  }
  return view;
}

Result<std::map<std::string, TensorView>> ViewsOf(const ws_tensor* tensors, size_t count,
                                                  std::string_view what, bool need_data) {
  if (count > 0) WS_RETURN_IF_ERROR(NotNull(tensors, "the tensor array"));
  std::map<std::string, TensorView> out;
  for (size_t i = 0; i < count; ++i) {
    WS_ASSIGN_OR_RETURN(TensorView view, ViewOf(tensors[i], what, need_data));
    if (!out.emplace(tensors[i].name, view).second) {
      return InvalidArgument(what, " tensor ", tensors[i].name, " is given twice");
    }
  }
  return out;
}

}  // namespace weightsync::capi

using namespace weightsync;  // NOLINT: the C entry points below only
using capi::Guard;

extern "C" {

WS_API const char* ws_version(void) { return WEIGHTSYNC_VERSION; }
WS_API int32_t ws_api_version(void) { return WS_API_VERSION; }

WS_API const char* ws_status_name(ws_status status) {
  if (status < WS_OK || status > WS_INTERNAL) return "UNKNOWN";
  return StatusCodeName(static_cast<StatusCode>(status)).data();  // literals: NUL-terminated
}

WS_API const char* ws_last_error(void) { return capi::thread_error.c_str(); }

WS_API size_t ws_dtype_size(ws_dtype dtype) {
  if (dtype < WS_DTYPE_BOOL || dtype > WS_DTYPE_F8E8M0) return 0;
  return DTypeSize(static_cast<DType>(dtype));
}

WS_API ws_status ws_launcher_rank(int32_t* rank, int32_t* world_size, int32_t* local_rank) {
  return Guard(nullptr, [&]() -> Status {
    WS_ASSIGN_OR_RETURN(agent::LauncherRank launcher, agent::RankFromEnvironment());
    if (rank) *rank = launcher.rank;
    if (world_size) *world_size = launcher.world_size;
    if (local_rank) *local_rank = launcher.local_rank;
    return Status::Ok();
  });
}

WS_API ws_status ws_config_set(const char* key, const char* value) {
  return Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(key, "key"));
    WS_RETURN_IF_ERROR(capi::NotNull(value, "value"));
    std::lock_guard<std::mutex> lock(capi::config_mu);
    WS_RETURN_IF_ERROR(capi::EnsureConfigLocked());
    if (std::string_view(key) == "log.level") {
      WS_ASSIGN_OR_RETURN(LogLevel level, ParseLogLevel(value));
      WS_RETURN_IF_ERROR(capi::config->Set(key, value));
      SetLogLevel(level);
      return Status::Ok();
    }
    return capi::config->Set(key, value);
  });
}

WS_API ws_status ws_config_get(const char* key, char* buf, size_t size, size_t* needed) {
  return Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(key, "key"));
    if (size > 0) WS_RETURN_IF_ERROR(capi::NotNull(buf, "buf"));
    WS_ASSIGN_OR_RETURN(Config c, capi::GlobalConfig());
    bool known = false;
    for (const ConfigOption& option : ConfigTable()) known |= option.name == key;
    if (!known) return NotFound("configuration option ", key, " does not exist");
    return capi::CopyOut(c.Value(key), buf, size, needed);
  });
}

WS_API ws_status ws_config_reset(void) {
  return Guard(nullptr, [&]() -> Status {
    WS_ASSIGN_OR_RETURN(Config c, Config::FromEnvironment());
    WS_RETURN_IF_ERROR(capi::ApplyLogLevel(c).WithContext("option log.level"));
    std::lock_guard<std::mutex> lock(capi::config_mu);
    capi::config = std::make_unique<Config>(std::move(c));
    return Status::Ok();
  });
}

WS_API size_t ws_tensor_list_size(const ws_tensor_list* list) {
  return list == nullptr ? 0 : list->items.size();
}

WS_API ws_status ws_tensor_list_get(const ws_tensor_list* list, size_t index, ws_tensor* out) {
  return Guard(nullptr, [&]() -> Status {
    WS_RETURN_IF_ERROR(capi::NotNull(list, "list"));
    WS_RETURN_IF_ERROR(capi::NotNull(out, "out"));
    if (index >= list->items.size()) {
      return OutOfRange("tensor list index ", index, " of ", list->items.size());
    }
    const ws_tensor_list::Item& item = list->items[index];
    *out = ws_tensor{item.name.c_str(), nullptr, static_cast<int32_t>(item.dtype),
                     static_cast<int32_t>(item.shape.size()), item.shape.data(), nullptr,
                     WS_DEVICE_CPU, 0};
    return Status::Ok();
  });
}

WS_API void ws_tensor_list_destroy(ws_tensor_list* list) { delete list; }

}  // extern "C"

namespace weightsync::capi {

Status CopyOut(const std::string& text, char* buf, size_t size, size_t* needed) {
  if (needed != nullptr) *needed = text.size() + 1;
  if (size > 0) {
    const size_t n = std::min(size - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  if (size < text.size() + 1) {
    return OutOfRange("the buffer has ", size, " bytes; ", text.size() + 1, " are needed");
  }
  return Status::Ok();
}

}  // namespace weightsync::capi
