// Small POSIX helpers for the io layer: owned descriptors and mappings, temporary names, fsync of
// directories. All errors come back as Status values that name the path and the errno text.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "core/unique_fd.h"
#include "weightsync/status.h"

namespace weightsync {

// "open a.safetensors: No such file or directory" style text for the current errno.
Status ErrnoStatus(std::string_view operation, const std::filesystem::path& path, int error);

// Closes `fd`, reporting the error close() gives (it can surface delayed write errors).
Status CloseFile(UniqueFd& fd, const std::filesystem::path& path);

// An owned mmap of a whole file, unmapped on destruction. Moving keeps the address stable.
class MemoryMapping {
 public:
  MemoryMapping() = default;
  // Maps `size` bytes of `fd`, read-only (MAP_PRIVATE) or read-write (MAP_SHARED).
  static Result<MemoryMapping> Map(int fd, size_t size, bool writable,
                                   const std::filesystem::path& path);
  MemoryMapping(MemoryMapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MemoryMapping& operator=(MemoryMapping&& other) noexcept;
  MemoryMapping(const MemoryMapping&) = delete;
  MemoryMapping& operator=(const MemoryMapping&) = delete;
  ~MemoryMapping() { Reset(); }

  uint8_t* data() const { return static_cast<uint8_t*>(data_); }
  size_t size() const { return size_; }
  // msync(MS_SYNC): the data reaches the file before it is renamed into place.
  Status Sync(const std::filesystem::path& path) const;
  void Reset();

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// A hidden name beside `final_path` for work in progress: ".<name>.tmp-<pid>-<random>".
std::filesystem::path TemporarySibling(const std::filesystem::path& final_path);

// fsync of a directory, so a rename inside it survives a crash.
Status FsyncDirectory(const std::filesystem::path& directory);

// Opens `path` read-only after checking (links followed) that it is a regular file: a FIFO, device,
// socket or directory is refused before open() could block on it (O_NONBLOCK closes the race of a
// file swapped in between). `what` names the file's role in the error ("safetensors file").
// `info` receives the fstat of the opened file.
Result<UniqueFd> OpenRegularFile(const std::filesystem::path& path, std::string_view what,
                                 struct stat* info);

// Reads a whole (small) file such as an index.json; a regular file only (see OpenRegularFile).
Result<std::string> ReadSmallFile(const std::filesystem::path& path, size_t max_size);

// Writes `contents` to a new file and fsyncs it; refuses to replace an existing file.
Status WriteNewFile(const std::filesystem::path& path, std::string_view contents);

}  // namespace weightsync
