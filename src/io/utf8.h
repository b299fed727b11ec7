// UTF-8 validation for names and metadata the writer puts into JSON headers, and escaping of
// names from input files before they enter error messages.
#pragma once

#include <string>
#include <string_view>

namespace weightsync {

// True for well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code points past
// U+10FFFF. The empty string is valid.
bool IsValidUtf8(std::string_view text);

// `text` as it may appear in an error message: printable UTF-8 passes through; NUL and other
// control characters (C0, DEL, C1) and bytes that are not well-formed UTF-8 appear as \xNN, one
// per byte, and a backslash as \\, so a name from a file cannot corrupt a log line or terminal
// and two different names never print alike.
std::string EscapeForMessage(std::string_view text);

}  // namespace weightsync
