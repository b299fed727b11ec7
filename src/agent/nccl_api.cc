#include "agent/nccl_api.h"

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS
#include <dlfcn.h>

#include <memory>
#include <mutex>

namespace weightsync::agent {
namespace {

template <typename Fn>
Status Bind(void* handle, const char* symbol, Fn& out) {
  void* p = dlsym(handle, symbol);
  if (p == nullptr) return Unavailable("unavailable: libnccl.so.2 lacks ", symbol);
  out = reinterpret_cast<Fn>(p);
  return Status::Ok();
}

Result<const NcclApi*> Load() {
  void* handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return Unavailable("unavailable: ", err ? err : "libnccl.so.2 not found");
  }
  auto api = std::make_unique<NcclApi>();
  WS_RETURN_IF_ERROR(Bind(handle, "ncclGetUniqueId", api->get_unique_id));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclCommInitRankConfig", api->comm_init_rank_config));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclCommDestroy", api->comm_destroy));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclCommAbort", api->comm_abort));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclCommGetAsyncError", api->comm_get_async_error));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclBroadcast", api->broadcast));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclSend", api->send));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclRecv", api->recv));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclGroupStart", api->group_start));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclGroupEnd", api->group_end));
  WS_RETURN_IF_ERROR(Bind(handle, "ncclGetErrorString", api->get_error_string));
  decltype(&::ncclGetVersion) get_version = nullptr;
  WS_RETURN_IF_ERROR(Bind(handle, "ncclGetVersion", get_version));
  get_version(&api->version);
  return api.release();  // process lifetime, like the library itself
}

}  // namespace

std::string NcclApi::ErrorText(ncclResult_t result) const {
  const char* text = get_error_string(result);
  return text ? text : "unknown NCCL error";
}

Result<const NcclApi*> LoadNccl() {
  static std::once_flag once;
  static Result<const NcclApi*> loaded = Unavailable("not loaded");
  std::call_once(once, [] { loaded = Load(); });
  return loaded;
}

}  // namespace weightsync::agent
#endif
