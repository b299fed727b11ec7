// Optional system libraries (CUDA driver, UCX, NCCL) are found at run time with dlopen, so one
// build runs on machines with or without them (as NCCL does with libcuda in src/misc/cudawrap.cc).
#pragma once

#include <string>
#include <vector>

namespace weightsync {

struct LibraryProbe {
  std::string name;       // "cuda", "ucx", "nccl"
  bool available = false;
  std::string detail;     // the file that loaded, or why none did ("unavailable: ...")
};

// Tries each file name in order with dlopen(RTLD_LAZY | RTLD_LOCAL) and closes it again.
LibraryProbe ProbeLibrary(const std::string& name, const std::vector<std::string>& files);

// The optional libraries weightsync knows about, probed now.
std::vector<LibraryProbe> ProbeOptionalLibraries();

}  // namespace weightsync
