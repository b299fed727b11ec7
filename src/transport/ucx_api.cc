#include "transport/ucx_api.h"

#include <dlfcn.h>

#include <memory>
#include <mutex>

namespace weightsync::transport {
namespace {

template <typename Fn>
Status Bind(void* handle, const char* symbol, Fn& out) {
  void* p = dlsym(handle, symbol);
  if (p == nullptr) {
    const char* err = dlerror();
    return Unavailable("unavailable: symbol ", symbol, " missing (", err ? err : "?", ")");
  }
  out = reinterpret_cast<Fn>(p);
  return Status::Ok();
}

Result<UcxApi*> Load() {
  auto api = std::make_unique<UcxApi>();
  void* handle = nullptr;
  std::string errors;
  for (const char* file : {"libucp.so.0", "libucp.so"}) {
    // RTLD_GLOBAL: UCX loads its transport modules (libuct_*.so) with dlopen, and they resolve
    // symbols of libucs/libuct against the already-loaded copies.
    handle = dlopen(file, RTLD_NOW | RTLD_GLOBAL);
    if (handle != nullptr) {
      api->library = file;
      break;
    }
    const char* err = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (err ? err : file);
  }
  if (handle == nullptr) return Unavailable("unavailable: ", errors);
  // Never dlclose: UCX registers atexit handlers and memory hooks that must stay mapped.
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_get_version", api->get_version));
  api->get_version(&api->major, &api->minor, &api->release);
  if (api->major != UCP_API_MAJOR || api->minor < 13) {
    return Unavailable("unavailable: ", api->library, " is UCX ", api->major, ".", api->minor,
                       ", weightsync needs 1.13 or newer");
  }
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_config_read", api->config_read));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_config_modify", api->config_modify));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_config_release", api->config_release));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_init_version", api->init_version));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_cleanup", api->cleanup));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_context_query", api->context_query));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_worker_create", api->worker_create));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_worker_destroy", api->worker_destroy));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_worker_get_address", api->worker_get_address));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_worker_release_address", api->worker_release_address));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_worker_progress", api->worker_progress));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_ep_create", api->ep_create));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_ep_close_nbx", api->ep_close_nbx));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_ep_flush_nbx", api->ep_flush_nbx));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_mem_map", api->mem_map));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_mem_query", api->mem_query));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_mem_unmap", api->mem_unmap));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_rkey_pack", api->rkey_pack));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_rkey_buffer_release", api->rkey_buffer_release));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_ep_rkey_unpack", api->ep_rkey_unpack));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_rkey_destroy", api->rkey_destroy));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_put_nbx", api->put_nbx));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_request_check_status", api->request_check_status));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_request_cancel", api->request_cancel));
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_request_free", api->request_free));
  WS_RETURN_IF_ERROR(Bind(RTLD_DEFAULT, "ucs_status_string", api->status_string));
  return api.release();
}

}  // namespace

std::string UcxApi::StatusText(ucs_status_t status) const {
  return StrCat(status_string(status), " (", static_cast<int>(status), ")");
}

Result<const UcxApi*> LoadUcxApi() {
  static std::once_flag once;
  static Result<UcxApi*>* loaded = nullptr;
  std::call_once(once, [] { loaded = new Result<UcxApi*>(Load()); });
  if (!loaded->ok()) return loaded->status();
  return static_cast<const UcxApi*>(loaded->value());
}

}  // namespace weightsync::transport
