#include "io/output_location.h"

#include <algorithm>
#include <system_error>

#include "io/file_util.h"

namespace weightsync {
namespace {

namespace fs = std::filesystem;

// Absolute, links resolved as far as the path exists, no trailing separator.
Result<fs::path> Resolve(const fs::path& path) {
  std::error_code error;
  fs::path resolved = fs::weakly_canonical(fs::absolute(path, error), error);
  if (error) return ErrnoStatus("resolve", path, error.value());
  if (!resolved.has_filename() && resolved.has_parent_path()) resolved = resolved.parent_path();
  return resolved;
}

// True when `inner` is `outer` or lies below it (component by component, not by text).
bool IsSameOrInside(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

std::string Shown(const fs::path& given, const fs::path& resolved) {
  return given == resolved ? given.string() : StrCat(given.string(), " (", resolved.string(), ")");
}

}  // namespace

Status CheckOutputApartFromInput(const fs::path& output, const Checkpoint& input) {
  WS_ASSIGN_OR_RETURN(const fs::path out, Resolve(output));
  const std::string shown_out = Shown(output, out);
  WS_ASSIGN_OR_RETURN(const fs::path root, Resolve(input.path()));
  const std::string shown_root = Shown(input.path(), root);
  const char* const refusal = ": weightsync never writes over its input; choose another output";
  if (out == root) {
    return InvalidArgument("output ", shown_out, " is the input ", shown_root, refusal);
  }
  if (IsSameOrInside(root, out)) {
    return InvalidArgument("output ", shown_out, " contains the input ", shown_root, refusal);
  }
  if (IsSameOrInside(out, root)) {
    return InvalidArgument("output ", shown_out, " lies inside the input ", shown_root, refusal);
  }
  for (const SafetensorsFile& file : input.files()) {
    WS_ASSIGN_OR_RETURN(const fs::path resolved, Resolve(file.path()));
    const std::string shown_file = Shown(file.path(), resolved);
    if (out == resolved) {
      return InvalidArgument("output ", shown_out, " is the input's file ", shown_file, refusal);
    }
    if (IsSameOrInside(resolved, out)) {
      return InvalidArgument("output ", shown_out, " contains the input's file ", shown_file,
                             refusal);
    }
  }
  return Status::Ok();
}

}  // namespace weightsync
