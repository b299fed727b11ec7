#include "io/safetensors_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace weightsync {

Result<SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path,
                                              uint64_t max_header_size) {
  const std::string context = StrCat("safetensors file ", path.string());
  struct stat info {};
  WS_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFile(path, "safetensors file", &info));
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  if (size == 0) return DataLoss(context, ": file is empty");
  if (size < kSafetensorsLengthPrefixSize) {
    return DataLoss(context, ": file is ", size, " bytes, too short for the 8-byte header length");
  }

  SafetensorsFile file;
  file.path_ = path;
  file.file_size_ = size;
  WS_ASSIGN_OR_RETURN(file.mapping_, MemoryMapping::Map(fd.get(), size, /*writable=*/false, path));
  // The mapping holds its own reference to the file; the descriptor is not needed any more.
  fd.Reset();

  Result<SafetensorsHeader> header = ParseSafetensorsHeader(
      std::span<const uint8_t>(file.mapping_.data(), size), size, max_header_size);
  if (!header.ok()) return header.status().WithContext(context);
  file.header_ = std::move(header).value();
  file.names_.reserve(file.header_.tensors.size());
  for (size_t i = 0; i < file.header_.tensors.size(); ++i) {
    file.names_.push_back(file.header_.tensors[i].name);
    file.index_.emplace(file.header_.tensors[i].name, i);
  }
  return file;
}

Result<const SafetensorsTensorInfo*> SafetensorsFile::Info(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return NotFound("tensor \"", name, "\" is not in safetensors file ", path_.string());
  }
  return &header_.tensors[it->second];
}

Result<TensorView> SafetensorsFile::Find(std::string_view name) const {
  WS_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Info(name));
  // The view type has no const flavour; the mapping is PROT_READ, so writes through it fault
  // rather than change the file. Callers treat views of input files as read-only.
  uint8_t* data = mapping_.data() + header_.data_offset() + info->begin;
  return TensorView::Contiguous(data, info->shape, info->dtype);
}

}  // namespace weightsync
