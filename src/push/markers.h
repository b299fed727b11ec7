// File markers, for orchestrators that coordinate through a shared directory (prime-rl style):
//   <dir>/broadcasts/step_N/STABLE          trainer rank 0: the weights of step N are ready
//   <dir>/broadcasts/step_N/TRANSFER_READY  the orchestrator: every engine is paused, write now
// TRANSFER_READY is one marker whatever the transport (the seed had one per transfer mode), and
// waiting for a marker always has a deadline (the seed polled for its READY marker forever).
//
// Threading: plain functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "control/deadline.h"
#include "weightsync/status.h"

namespace weightsync::push {

inline constexpr std::string_view kStableMarker = "STABLE";
inline constexpr std::string_view kTransferReadyMarker = "TRANSFER_READY";

// <dir>/broadcasts/step_<step>/<marker>
std::filesystem::path MarkerPath(const std::filesystem::path& dir, uint64_t step,
                                 std::string_view marker);

// Creates the marker (and its directories). Written to a temporary name and renamed, so a reader
// never sees a half-written marker.
Status WriteMarker(const std::filesystem::path& path, std::string_view contents = "");

// Polls until the marker exists; kDeadlineExceeded naming it when it does not appear in time.
Status WaitForMarker(const std::filesystem::path& path, control::Deadline deadline);

}  // namespace weightsync::push
