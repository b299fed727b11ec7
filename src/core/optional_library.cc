#include "core/optional_library.h"

#include <dlfcn.h>

namespace weightsync {

LibraryProbe ProbeLibrary(const std::string& name, const std::vector<std::string>& files) {
  LibraryProbe probe{name, false, ""};
  std::string errors;
  for (const auto& file : files) {
    if (void* handle = dlopen(file.c_str(), RTLD_LAZY | RTLD_LOCAL)) {
      dlclose(handle);
      probe.available = true;
      probe.detail = file;
      return probe;
    }
    const char* error = dlerror();
    if (!errors.empty()) errors += "; ";
    errors += error ? error : file + ": not found";
  }
  probe.detail = "unavailable: " + errors;
  return probe;
}

std::vector<LibraryProbe> ProbeOptionalLibraries() {
  return {
      ProbeLibrary("cuda", {"libcuda.so.1", "libcuda.so"}),
      ProbeLibrary("ucx", {"libucp.so.0", "libucp.so"}),
      ProbeLibrary("nccl", {"libnccl.so.2", "libnccl.so"}),
  };
}

}  // namespace weightsync
