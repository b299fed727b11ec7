// ParallelFor: split [0, count) into contiguous chunks run on up to `threads` std::threads.
//
// For bulk CPU work (conversion of many 128x128 blocks); each call starts and joins its own threads,
// which costs ~tens of microseconds, so callers hand it work of at least a few megabytes. The first
// non-OK Status returned by any chunk is returned; chunks already started run to completion.
#pragma once

#include <cstdint>
#include <functional>

#include "weightsync/status.h"

namespace weightsync {

// threads <= 0 means one per hardware thread.
int ResolveThreadCount(int64_t threads);

Status ParallelFor(int64_t count, int threads,
                   const std::function<Status(int64_t begin, int64_t end)>& body);

}  // namespace weightsync
