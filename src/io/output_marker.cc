#include "io/output_marker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"
#include "io/json_util.h"
#include "io/safetensors_file.h"

namespace weightsync {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxMarkerSize = 16ull << 20;

Status NotWrittenByUs(const fs::path& path, std::string_view why) {
  return FailedPrecondition("overwrite replaces only output that weightsync wrote, and ",
                            path.string(), " ", why,
                            ": nothing was deleted (move it away or choose another output)");
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// The files the marker of `directory` lists; FailedPrecondition when it has none or a bad one.
Result<std::set<std::string>> ListedFiles(const fs::path& directory) {
  const fs::path marker = directory / kOutputMarkerName;
  struct stat info {};
  if (::lstat(marker.c_str(), &info) != 0) {
    return NotWrittenByUs(directory, StrCat("has no ", kOutputMarkerName));
  }
  Result<std::string> text = ReadSmallFile(marker, kMaxMarkerSize);
  if (!text.ok()) return NotWrittenByUs(directory, text.status().message());
  Result<nlohmann::json> parsed = ParseJsonRejectingDuplicateKeys(*text);
  const char* const malformed =
      "has a malformed marker (want {\"written_by\": \"weightsync\", "
      "\"files\": [file names]})";
  if (!parsed.ok() || !parsed->is_object()) return NotWrittenByUs(marker, malformed);
  auto written_by = parsed->find(kWrittenByKey);
  auto files = parsed->find("files");
  if (written_by == parsed->end() || *written_by != kWrittenByValue || files == parsed->end() ||
      !files->is_array()) {
    return NotWrittenByUs(marker, malformed);
  }
  std::set<std::string> names;
  for (const nlohmann::json& name : *files) {
    if (!name.is_string() || !IsPlainFileName(name.get<std::string>())) {
      return NotWrittenByUs(marker, malformed);
    }
    names.insert(name.get<std::string>());
  }
  return names;
}

Status CheckReplaceableDirectory(const fs::path& directory) {
  WS_ASSIGN_OR_RETURN(const std::set<std::string> listed, ListedFiles(directory));
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    if (name == kOutputMarkerName) continue;
    if (!listed.contains(name)) {
      return NotWrittenByUs(directory, StrCat("holds ", name, ", which weightsync did not write"));
    }
    if (!entry.is_regular_file(error) || entry.is_symlink(error)) {
      return NotWrittenByUs(directory, StrCat("holds ", name, ", which is not a regular file"));
    }
  }
  if (error) return ErrnoStatus("list directory", directory, error.value());
  return Status::Ok();
}

Status CheckReplaceableFile(const fs::path& path) {
  if (path.extension() != ".safetensors") {
    return NotWrittenByUs(path, "is not a .safetensors file");
  }
  Result<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return NotWrittenByUs(path, StrCat("does not open: ", file.status().message()));
  auto mark = file->metadata().find(std::string(kWrittenByKey));
  if (mark == file->metadata().end() || mark->second != kWrittenByValue) {
    return NotWrittenByUs(
        path, StrCat("has no ", kWrittenByKey, "=", kWrittenByValue, " in its metadata"));
  }
  return Status::Ok();
}

}  // namespace

std::string OutputMarkerText(const std::vector<std::string>& files) {
  nlohmann::json marker = {{kWrittenByKey, kWrittenByValue}, {"files", files}};
  return marker.dump(2) + "\n";
}

Status CheckReplaceable(const fs::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return ErrnoStatus("stat", path, errno);
  if (S_ISLNK(info.st_mode)) return NotWrittenByUs(path, "is a symbolic link");
  if (S_ISDIR(info.st_mode)) return CheckReplaceableDirectory(path);
  if (S_ISREG(info.st_mode)) return CheckReplaceableFile(path);
  return NotWrittenByUs(path, "is not a regular file or a directory");
}

Status RemoveMarkedDirectory(const fs::path& directory) {
  WS_ASSIGN_OR_RETURN(const std::set<std::string> listed, ListedFiles(directory));
  for (const std::string& name : listed) {
    const fs::path file = directory / name;
    if (::unlink(file.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("delete", file, errno);
  }
  const fs::path marker = directory / kOutputMarkerName;
  if (::unlink(marker.c_str()) != 0) return ErrnoStatus("delete", marker, errno);
  if (::rmdir(directory.c_str()) != 0) {
    return FailedPrecondition("the replaced output, now at ", directory.string(),
                              ", holds files weightsync did not write: they were kept there");
  }
  return Status::Ok();
}

}  // namespace weightsync
