// The UCP functions weightsync calls, loaded from libucp.so.0 at run time (as NCCL loads libcuda
// in src/misc/cudawrap.cc), so a build compiled against Debian's UCX 1.13 headers runs on machines
// without UCX (the backend reports "unavailable: ...") and on machines with UCX 1.13-1.16
// runtime libraries. Only functions whose ABI is unchanged across those versions are used; the
// parameter structs are read by the library only up to the fields named in their field_mask.
// A UCX outside the loader's search path (RAPIDS' CUDA-enabled libucx-cu13 wheel, say) is loaded
// from its folder: transport.ucx_library_dir.
//
// Threading: LoadUcxApi() is thread-safe (loaded once); the table is immutable afterwards.
#pragma once

#include <ucp/api/ucp.h>

#include <string>

#include "weightsync/status.h"

namespace weightsync::transport {

struct UcxApi {
  unsigned major = 0, minor = 0, release = 0;  // of the loaded library
  std::string library;      // the libucp file that loaded (its resolved path when known)
  std::string ucs_library;  // the libucs it runs with; UCX finds its modules in <its folder>/ucx
  std::string library_dir;  // transport.ucx_library_dir it was loaded for ("" = search path)

  decltype(&::ucp_get_version) get_version;
  decltype(&::ucp_config_read) config_read;
  decltype(&::ucp_config_modify) config_modify;
  decltype(&::ucp_config_release) config_release;
  decltype(&::ucp_init_version) init_version;
  decltype(&::ucp_cleanup) cleanup;
  decltype(&::ucp_context_query) context_query;
  decltype(&::ucp_worker_create) worker_create;
  decltype(&::ucp_worker_destroy) worker_destroy;
  decltype(&::ucp_worker_get_address) worker_get_address;
  decltype(&::ucp_worker_release_address) worker_release_address;
  decltype(&::ucp_worker_progress) worker_progress;
  decltype(&::ucp_ep_create) ep_create;
  decltype(&::ucp_ep_close_nbx) ep_close_nbx;
  decltype(&::ucp_ep_flush_nbx) ep_flush_nbx;
  decltype(&::ucp_mem_map) mem_map;
  decltype(&::ucp_mem_unmap) mem_unmap;
  decltype(&::ucp_mem_query) mem_query;
  decltype(&::ucp_rkey_pack) rkey_pack;
  decltype(&::ucp_rkey_buffer_release) rkey_buffer_release;
  decltype(&::ucp_ep_rkey_unpack) ep_rkey_unpack;
  decltype(&::ucp_rkey_destroy) rkey_destroy;
  decltype(&::ucp_put_nbx) put_nbx;
  decltype(&::ucp_request_check_status) request_check_status;
  decltype(&::ucp_request_cancel) request_cancel;
  decltype(&::ucp_request_free) request_free;
  decltype(&::ucs_status_string) status_string;  // from libucs, loaded as libucp's dependency

  std::string StatusText(ucs_status_t status) const;
};

// Loads libucp once per process: `library_dir`/libucp.so.0 when library_dir is not empty (its
// libucs, libuct and libucm must then come from that folder too), else libucp.so.0 from the
// loader's search path. kUnavailable with the dlopen error, a version below 1.13, or libraries of
// another UCX already in the process. A failed load may be retried; once one succeeded, a call
// asking for another folder is kFailedPrecondition (two UCX copies cannot share a process), and
// a call with "" gets the loaded one.
Result<const UcxApi*> LoadUcxApi(const std::string& library_dir = "");

}  // namespace weightsync::transport
