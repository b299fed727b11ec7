// UTF-8 validation for names and metadata the writer puts into JSON headers.
#pragma once

#include <string_view>

namespace weightsync {

// True for well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code points past
// U+10FFFF. The empty string is valid.
bool IsValidUtf8(std::string_view text);

}  // namespace weightsync
