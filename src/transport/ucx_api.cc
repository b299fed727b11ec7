#include "transport/ucx_api.h"

#include <dlfcn.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

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

// The file that defines `symbol` in this process ("" when unknown).
std::string FileOf(const void* symbol) {
  Dl_info info{};
  if (symbol == nullptr || dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

// `path`'s folder with links resolved, for comparing where libraries came from.
std::string RealFolder(const std::string& path) {
  std::error_code ec;
  const auto real = std::filesystem::canonical(path, ec);
  return ec ? path : real.parent_path().string();
}

Result<UcxApi*> Load(const std::string& library_dir) {
  auto api = std::make_unique<UcxApi>();
  api->library_dir = library_dir;
  void* handle = nullptr;
  std::string errors;
  std::vector<std::string> files = {"libucp.so.0", "libucp.so"};
  if (!library_dir.empty()) {
    files = {library_dir + "/libucp.so.0"};  // no fallback: the user asked for this UCX
  }
  for (const std::string& file : files) {
    // RTLD_GLOBAL: UCX loads its transport modules (libuct_*.so) with dlopen, and they resolve
    // symbols of libucs/libuct against the already-loaded copies.
    handle = dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle != nullptr) {
      api->library = file;
      break;
    }
    const char* err = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (err ? err : file);
  }
  if (handle == nullptr) {
    if (library_dir.empty()) return Unavailable("unavailable: ", errors);
    return Unavailable("unavailable: ", errors, " (transport.ucx_library_dir=", library_dir, ")");
  }
  // Never dlclose: UCX registers atexit handlers and memory hooks that must stay mapped.
  WS_RETURN_IF_ERROR(Bind(handle, "ucp_get_version", api->get_version));
  // libucs is libucp's dependency: a lookup through libucp's handle finds the copy it uses.
  WS_RETURN_IF_ERROR(Bind(handle, "ucs_status_string", api->status_string));
  if (std::string file = FileOf(reinterpret_cast<void*>(api->get_version)); !file.empty()) {
    api->library = file;
  }
  api->ucs_library = FileOf(reinterpret_cast<void*>(api->status_string));
  if (!library_dir.empty()) {
    // libucp finds libucs/libuct/libucm next to itself (RPATH $ORIGIN in UCX's builds), unless
    // another UCX's copies are already in this process: the loader then reuses those by soname,
    // and a mix of two UCX versions (with the other one's modules) would run.
    const std::string want = RealFolder(library_dir + "/libucp.so.0");
    for (const char* symbol : {"ucs_status_string", "uct_md_close", "ucm_set_event_handler"}) {
      const std::string file = FileOf(dlsym(handle, symbol));
      if (file.empty() || RealFolder(file) != want) {
        return Unavailable("unavailable: transport.ucx_library_dir=", library_dir, ": ", symbol,
                           " comes from ", file.empty() ? "nowhere" : file, ", not from ", want,
                           " (another UCX was loaded into this process first, or that folder "
                           "lacks UCX's libucs/libuct/libucm)");
      }
    }
  }
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
  return api.release();
}

}  // namespace

std::string UcxApi::StatusText(ucs_status_t status) const {
  return StrCat(status_string(status), " (", static_cast<int>(status), ")");
}

Result<const UcxApi*> LoadUcxApi(const std::string& library_dir) {
  static std::mutex mutex;
  static const UcxApi* loaded = nullptr;  // never freed: UCX stays mapped (see Load)
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded != nullptr) {
    if (library_dir.empty() || library_dir == loaded->library_dir) return loaded;
    return FailedPrecondition("transport.ucx_library_dir=", library_dir, ": this process already "
                              "loaded UCX from ", loaded->library,
                              " and cannot load a second one");
  }
  WS_ASSIGN_OR_RETURN(UcxApi * api, Load(library_dir));
  loaded = api;
  return loaded;
}

}  // namespace weightsync::transport
