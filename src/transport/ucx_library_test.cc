// transport.ucx_library_dir: loading libucp from a chosen folder. Each case runs in a child
// process (gtest's EXPECT_EXIT), since a process keeps the first UCX it loads for good.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "transport/transport.h"
#include "transport/ucx_api.h"

namespace weightsync::transport {
namespace {

namespace fs = std::filesystem;

// Ends the child: 0 with "PASS" when `ok`, else 1 with `why` (EXPECT_EXIT shows stderr).
[[noreturn]] void Finish(bool ok, const std::string& why) {
  std::fprintf(stderr, "%s\n", ok ? "PASS" : why.c_str());
  std::fflush(stderr);
  std::_Exit(ok ? 0 : 1);
}

// The folder of the libucp.so.0 the loader finds by itself ("" when UCX is not installed).
std::string SystemUcxFolder() {
  void* handle = dlopen("libucp.so.0", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) handle = dlopen("libucp.so.0", RTLD_LAZY | RTLD_LOCAL);
  if (handle == nullptr) return "";
  Dl_info info{};
  void* symbol = dlsym(handle, "ucp_get_version");
  if (symbol == nullptr || dladdr(symbol, &info) == 0) return "";
  return fs::canonical(info.dli_fname).parent_path().string();
}

class UcxLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec: the child starts clean
    if (std::getenv("WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR") != nullptr) {
      GTEST_SKIP() << "WEIGHTSYNC_TRANSPORT_UCX_LIBRARY_DIR is set; these cases choose the folder";
    }
  }
};

TEST_F(UcxLibraryTest, MissingFolderIsUnavailableNamingIt) {
  EXPECT_EXIT(
      {
        TransportOptions options;
        options.ucx_library_dir = "/nonexistent/ucx-lib";
        auto t = CreateTransport("ucx", options);
        const std::string message = t.ok() ? "" : t.status().message();
        Finish(!t.ok() && t.status().code() == StatusCode::kUnavailable &&
                   message.rfind("unavailable: ", 0) == 0 &&
                   message.find("/nonexistent/ucx-lib/libucp.so.0") != std::string::npos &&
                   message.find("transport.ucx_library_dir") != std::string::npos,
               t.ok() ? "loaded" : t.status().ToString());
      },
      ::testing::ExitedWithCode(0), "PASS");
}

TEST_F(UcxLibraryTest, SystemFolderLoadsAndAnotherFolderIsRefusedAfterwards) {
  const std::string folder = SystemUcxFolder();
  if (folder.empty()) GTEST_SKIP() << "no libucp.so.0 on this machine";
  EXPECT_EXIT(
      {
        auto api = LoadUcxApi(folder);
        if (!api.ok()) Finish(false, api.status().ToString());
        const bool from_folder =
            fs::canonical((*api)->library).parent_path() == folder &&
            fs::canonical((*api)->ucs_library).parent_path() == folder;
        auto again = LoadUcxApi("");  // no preference: the loaded one
        auto other = LoadUcxApi("/opt/other-ucx/lib");
        Finish(from_folder && again.ok() && *again == *api &&
                   other.status().code() == StatusCode::kFailedPrecondition &&
                   other.status().message().find((*api)->library) != std::string::npos,
               StrCat("library ", (*api)->library, ", libucs ", (*api)->ucs_library,
                      ", other: ", other.status().ToString()));
      },
      ::testing::ExitedWithCode(0), "PASS");
}

// A folder holding libucp alone: its libucs would come from elsewhere (a mix of two UCX builds),
// which is refused naming where it came from.
TEST_F(UcxLibraryTest, FolderWithoutItsDependenciesIsRefused) {
  const std::string folder = SystemUcxFolder();
  if (folder.empty()) GTEST_SKIP() << "no libucp.so.0 on this machine";
  const fs::path lonely = fs::temp_directory_path() / StrCat("ws-ucx-lonely-", getpid());
  fs::create_directories(lonely);
  fs::copy_file(fs::canonical(fs::path(folder) / "libucp.so.0"), lonely / "libucp.so.0",
                fs::copy_options::overwrite_existing);
  EXPECT_EXIT(
      {
        TransportOptions options;
        options.ucx_library_dir = lonely.string();
        auto t = CreateTransport("ucx", options);
        const std::string message = t.ok() ? "" : t.status().message();
        Finish(!t.ok() && message.find("ucs_status_string comes from ") != std::string::npos &&
                   message.find("libucs.so") != std::string::npos &&
                   message.find(lonely.string()) != std::string::npos,
               t.ok() ? "loaded" : t.status().ToString());
      },
      ::testing::ExitedWithCode(0), "PASS");
  fs::remove_all(lonely);
}

}  // namespace
}  // namespace weightsync::transport
