# cmake -DINPUT=file.fatbin -DOUTPUT=file.cc -DFUNCTION=ns::Name -DHEADER=dir/x.h -P EmbedBinary.cmake
# Writes a C++ file whose FUNCTION() returns the bytes of INPUT (device code the library loads
# with cuModuleLoadData at run time, so no binary links the CUDA runtime).
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Lines of 32 bytes keep the generated file readable in a debugger.
string(REGEX REPLACE "((0x..,){32})" "\\1\n    " bytes "${bytes}")
string(REGEX MATCH "^(.*)::([^:]+)$" unused "${FUNCTION}")
set(namespace "${CMAKE_MATCH_1}")
set(name "${CMAKE_MATCH_2}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from ${INPUT} by cmake/EmbedBinary.cmake. Do not edit.
#include \"${HEADER}\"

namespace ${namespace} {
namespace {
// The driver reads fatbin headers in place: keep them aligned.
alignas(64) const unsigned char kImage[${size}] = {
    ${bytes}};
}  // namespace

std::span<const unsigned char> ${name}() { return {kImage, sizeof(kImage)}; }

}  // namespace ${namespace}
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
