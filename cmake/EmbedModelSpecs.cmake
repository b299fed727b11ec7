# cmake -DOUTPUT=file.cc -DINPUTS="a.json|b.json" -P EmbedModelSpecs.cmake
# Writes a C++ file defining weightsync::BuiltinModelSpecs() over the given JSON files.
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(body "")
foreach(input IN LISTS INPUTS)
  file(READ "${input}" text)
  get_filename_component(name "${input}" NAME)
  string(APPEND body "      {\"${name}\", R\"WSJSON(${text})WSJSON\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
"// Generated from models/*.json by cmake/EmbedModelSpecs.cmake. Do not edit.
#include \"model/builtin_model_specs.h\"

namespace weightsync {

const std::vector<std::pair<std::string_view, std::string_view>>& BuiltinModelSpecs() {
  static const std::vector<std::pair<std::string_view, std::string_view>> kSpecs = {
${body}  };
  return kSpecs;
}

}  // namespace weightsync
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
