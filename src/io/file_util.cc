#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace weightsync {

Status ErrnoStatus(std::string_view operation, const std::filesystem::path& path, int error) {
  std::string message = StrCat(operation, " ", path.string(), ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return NotFound(message);
    case EEXIST:
    case ENOTEMPTY:
      return AlreadyExists(message);
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
      return ResourceExhausted(message);
    case EACCES:
    case EPERM:
    case EISDIR:
    case ENOTDIR:
      return FailedPrecondition(message);
    default:
      return Unavailable(message);
  }
}

Status CloseFile(UniqueFd& fd, const std::filesystem::path& path) {
  if (int error = fd.CloseChecked(); error != 0) return ErrnoStatus("close", path, error);
  return Status::Ok();
}

Result<MemoryMapping> MemoryMapping::Map(int fd, size_t size, bool writable,
                                         const std::filesystem::path& path) {
  MemoryMapping mapping;
  if (size == 0) return mapping;  // mmap refuses zero lengths; nothing to map
  int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  int flags = writable ? MAP_SHARED : MAP_PRIVATE;
  void* data = ::mmap(nullptr, size, protection, flags, fd, 0);
  if (data == MAP_FAILED) return ErrnoStatus("mmap", path, errno);
  mapping.data_ = data;
  mapping.size_ = size;
  return mapping;
}

MemoryMapping& MemoryMapping::operator=(MemoryMapping&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Status MemoryMapping::Sync(const std::filesystem::path& path) const {
  if (data_ != nullptr && ::msync(data_, size_, MS_SYNC) != 0) {
    return ErrnoStatus("msync", path, errno);
  }
  return Status::Ok();
}

void MemoryMapping::Reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

std::filesystem::path TemporarySibling(const std::filesystem::path& final_path) {
  static thread_local std::mt19937_64 random(std::random_device{}());
  char suffix[17];
  std::snprintf(suffix, sizeof(suffix), "%016llx", static_cast<unsigned long long>(random()));
  std::string name = StrCat(".", final_path.filename().string(), ".tmp-",
                            static_cast<int64_t>(::getpid()), "-", std::string_view(suffix));
  return final_path.parent_path() / name;
}

Status FsyncDirectory(const std::filesystem::path& directory) {
  std::filesystem::path dir = directory.empty() ? std::filesystem::path(".") : directory;
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return ErrnoStatus("fsync", dir, errno);
  return CloseFile(fd, dir);
}

namespace {

std::string_view FileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

}  // namespace

Result<UniqueFd> OpenRegularFile(const std::filesystem::path& path, std::string_view what,
                                 struct stat* info) {
  auto not_regular = [&](mode_t mode) {
    return FailedPrecondition(what, " ", path.string(), " is ", FileTypeName(mode),
                              ", not a regular file");
  };
  if (::stat(path.c_str(), info) != 0) return ErrnoStatus("stat", path, errno);
  if (!S_ISREG(info->st_mode)) return not_regular(info->st_mode);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus("open", path, errno);
  if (::fstat(fd.get(), info) != 0) return ErrnoStatus("stat", path, errno);
  if (!S_ISREG(info->st_mode)) return not_regular(info->st_mode);
  return fd;
}

Result<std::string> ReadSmallFile(const std::filesystem::path& path, size_t max_size) {
  struct stat info {};
  WS_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFile(path, "file", &info));
  if (static_cast<uint64_t>(info.st_size) > max_size) {
    return ResourceExhausted(path.string(), " is ", static_cast<int64_t>(info.st_size),
                             " bytes, more than the limit of ", max_size);
  }
  std::string contents(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::read(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read", path, errno);
    if (n == 0) return DataLoss(path.string(), " shrank while being read");
    done += static_cast<size_t>(n);
  }
  return contents;
}

Status WriteNewFile(const std::filesystem::path& path, std::string_view contents) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd.valid()) return ErrnoStatus("create", path, errno);
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write", path, errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return ErrnoStatus("fsync", path, errno);
  return CloseFile(fd, path);
}

}  // namespace weightsync
