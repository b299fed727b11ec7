// What every C API entry point shares: the handle structs (complete types of the header's opaque
// ones), error slots, the exception-catching guard, and conversions between ws_tensor and
// TensorView.
//
// Threading: ErrorSlot is synchronized; the rest are plain values or pure functions.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/agent_options.h"
#include "agent/inference_agent.h"
#include "core/config.h"
#include "weightsync/status.h"
#include "weightsync/tensor.h"
#include "weightsync/weightsync.h"

namespace weightsync::capi {

// A handle's last error. The returned pointer stays valid until the next Set (documented in the
// header): callers sharing a handle between threads read ws_last_error() instead.
class ErrorSlot {
 public:
  void Set(const std::string& message);
  const char* Get() const;

 private:
  mutable std::mutex mu_;
  std::string message_;
};

// Records a failed status in the thread's error and, when given, the handle's.
ws_status Report(const Status& status, ErrorSlot* slot);

// Runs `body` (returning Status) so that no exception escapes: every entry point goes through it.
template <typename Body>
ws_status Guard(ErrorSlot* slot, Body&& body) noexcept {
  try {
    return Report(body(), slot);
  } catch (const std::bad_alloc&) {
    return Report(ResourceExhausted("out of memory"), slot);
  } catch (const std::exception& e) {
    return Report(Internal("unexpected exception: ", e.what()), slot);
  } catch (...) {
    return Report(Internal("unexpected exception of unknown type"), slot);
  }
}

// The (buf, size, needed) copy-out of the header's conventions.
Status CopyOut(const std::string& text, char* buf, size_t size, size_t* needed);

// Null checks that name the argument.
Status NotNull(const void* pointer, const char* what);

// The process-wide configuration (ws_config_*), copied.
Result<Config> GlobalConfig();

// One ws_tensor as a TensorView; `index` and `what` name it in errors ("source 3").
Result<TensorView> ViewOf(const ws_tensor& tensor, std::string_view what, bool need_data);
// An array of ws_tensor as name -> view; duplicate or empty names are errors.
Result<std::map<std::string, TensorView>> ViewsOf(const ws_tensor* tensors, size_t count,
                                                  std::string_view what, bool need_data);

// Parsed WS_OPTIONS (see the header): agent options plus the inference-only keys.
struct ParsedOptions {
  agent::AgentOptions agent;
  agent::InferenceAgentOptions inference;
};
// `inference_keys`: whether admin_token / admin_listen / expert_map are allowed.
Result<ParsedOptions> ParseOptions(const char* json_text, bool inference_keys);

}  // namespace weightsync::capi

// Description of tensors owned by the list (ws_tensor_list_get points into it).
struct ws_tensor_list {
  struct Item {
    std::string name;
    weightsync::DType dtype;
    weightsync::Shape shape;
  };
  std::vector<Item> items;
};
