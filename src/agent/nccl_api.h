// NCCL loaded at run time (libnccl.so.2), like the CUDA driver: one build runs with or without
// it. Only what the NCCL transfer mode uses (agent/nccl_mode.h): a communicator created
// non-blocking (so every wait can have a deadline and a stuck peer can be aborted), grouped
// broadcasts and point-to-point transfers, async error polling.
//
// Threading: the table is immutable once loaded; NCCL's own rules apply to communicators.
#pragma once

#include <string>

#include "weightsync/status.h"

#ifdef WEIGHTSYNC_HAVE_NCCL_HEADERS
#include <nccl.h>

namespace weightsync::agent {

struct NcclApi {
  decltype(&::ncclGetUniqueId) get_unique_id;
  decltype(&::ncclCommInitRankConfig) comm_init_rank_config;
  decltype(&::ncclCommDestroy) comm_destroy;
  decltype(&::ncclCommAbort) comm_abort;
  decltype(&::ncclCommGetAsyncError) comm_get_async_error;
  decltype(&::ncclBroadcast) broadcast;
  decltype(&::ncclSend) send;
  decltype(&::ncclRecv) recv;
  decltype(&::ncclGroupStart) group_start;
  decltype(&::ncclGroupEnd) group_end;
  decltype(&::ncclGetErrorString) get_error_string;
  int version = 0;

  std::string ErrorText(ncclResult_t result) const;
};

// Loads libnccl.so.2 once; kUnavailable with dlopen's reason when it is missing.
Result<const NcclApi*> LoadNccl();

}  // namespace weightsync::agent
#endif
