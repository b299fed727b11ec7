#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>

namespace weightsync {
namespace {

// rename() that refuses to replace an existing file where the kernel and file system can say so
// atomically (RENAME_NOREPLACE), else after a check (a small race, documented).
int RenameNoReplace(const std::filesystem::path& from, const std::filesystem::path& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
#endif
  if (::access(to.c_str(), F_OK) == 0) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

}  // namespace

Result<SafetensorsWriter> SafetensorsWriter::Create(const std::filesystem::path& path,
                                                    std::span<const TensorDecl> tensors,
                                                    const SafetensorsWriterOptions& options) {
  const std::string context = StrCat("writing ", path.string());
  if (path.filename().empty()) return InvalidArgument(context, ": not a file path");
  if (!options.overwrite && ::access(path.c_str(), F_OK) == 0) {
    return AlreadyExists(context, ": the file exists (overwrite not requested)");
  }

  SafetensorsWriter writer;
  writer.path_ = path;
  writer.overwrite_ = options.overwrite;
  writer.tensors_.reserve(tensors.size());
  for (const TensorDecl& decl : tensors) {
    writer.tensors_.push_back({decl.name, decl.dtype, decl.shape, 0, 0});
  }
  // Data layout: largest elements first keeps every tensor aligned without padding.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return DTypeSize(tensors[a].dtype) > DTypeSize(tensors[b].dtype);
  });
  uint64_t offset = 0;
  for (size_t i : order) {
    SafetensorsTensorInfo& info = writer.tensors_[i];
    Result<uint64_t> bytes = SafetensorsTensorBytes(info.name, info.dtype, info.shape);
    if (!bytes.ok()) return bytes.status().WithContext(context);
    info.begin = offset;
    if (*bytes > UINT64_MAX - offset) return InvalidArgument(context, ": total size overflows");
    info.end = offset += *bytes;
  }
  Result<std::string> header = SerializeSafetensorsHeader(writer.tensors_, options.metadata);
  if (!header.ok()) return header.status().WithContext(context);
  writer.data_offset_ = header->size();
  const uint64_t file_size = header->size() + offset;
  for (size_t i = 0; i < writer.tensors_.size(); ++i) {
    writer.names_.push_back(writer.tensors_[i].name);
    writer.index_.emplace(writer.tensors_[i].name, i);
  }

  writer.temporary_path_ = TemporarySibling(path);
  writer.fd_ = UniqueFd(
      ::open(writer.temporary_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!writer.fd_.valid()) return ErrnoStatus("create", writer.temporary_path_, errno);
  writer.active_ = true;  // from here on, failures remove the file (destructor)
  if (int error = ::posix_fallocate(writer.fd_.get(), 0, static_cast<off_t>(file_size))) {
    return ErrnoStatus(StrCat("reserve ", file_size, " bytes for"), writer.temporary_path_, error);
  }
  WS_ASSIGN_OR_RETURN(writer.mapping_,
                      MemoryMapping::Map(writer.fd_.get(), file_size,
                                         /*writable=*/true, writer.temporary_path_));
  std::memcpy(writer.mapping_.data(), header->data(), header->size());
  return writer;
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& other) noexcept {
  *this = std::move(other);
}

SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& other) noexcept {
  if (this != &other) {
    Abort();
    path_ = std::move(other.path_);
    temporary_path_ = std::move(other.temporary_path_);
    overwrite_ = other.overwrite_;
    active_ = std::exchange(other.active_, false);
    fd_ = std::move(other.fd_);
    mapping_ = std::move(other.mapping_);
    data_offset_ = other.data_offset_;
    names_ = std::move(other.names_);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
  }
  return *this;
}

Result<TensorView> SafetensorsWriter::Tensor(std::string_view name) const {
  if (!active_) return FailedPrecondition("writer for ", path_.string(), " is closed");
  auto it = index_.find(name);
  if (it == index_.end()) {
    return NotFound("tensor \"", name, "\" was not declared for ", path_.string());
  }
  const SafetensorsTensorInfo& info = tensors_[it->second];
  return TensorView::Contiguous(mapping_.data() + data_offset_ + info.begin, info.shape,
                                info.dtype);
}

Status SafetensorsWriter::Commit() {
  if (!active_) return FailedPrecondition("writer for ", path_.string(), " is closed");
  Status status = mapping_.Sync(temporary_path_);
  mapping_.Reset();
  if (status.ok() && ::fsync(fd_.get()) != 0) status = ErrnoStatus("fsync", temporary_path_, errno);
  if (status.ok()) status = CloseFile(fd_, temporary_path_);
  if (status.ok()) {
    int renamed = overwrite_ ? ::rename(temporary_path_.c_str(), path_.c_str())
                             : RenameNoReplace(temporary_path_, path_);
    if (renamed != 0)
      status = ErrnoStatus(StrCat("rename ", temporary_path_.string(), " to"), path_, errno);
  }
  if (!status.ok()) {
    Abort();
    return status;
  }
  active_ = false;
  return FsyncDirectory(path_.parent_path());
}

void SafetensorsWriter::Abort() {
  mapping_.Reset();
  fd_.Reset();
  if (active_) ::unlink(temporary_path_.c_str());
  active_ = false;
}

}  // namespace weightsync
