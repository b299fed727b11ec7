#include "io/utf8.h"

#include <cstdint>
#include <cstdio>

namespace weightsync {

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
    uint8_t lead = byte(i);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t smallest = 0;  // below this the encoding is overlong
    if ((lead & 0xe0) == 0xc0) {
      length = 2, code_point = lead & 0x1fu, smallest = 0x80;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3, code_point = lead & 0x0fu, smallest = 0x800;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4, code_point = lead & 0x07u, smallest = 0x10000;
    } else {
      return false;  // a continuation byte or 0xf8..0xff where a character must start
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) return false;
      code_point = (code_point << 6) | (byte(i + k) & 0x3fu);
    }
    if (code_point < smallest || code_point > 0x10ffff) return false;
    if (code_point >= 0xd800 && code_point <= 0xdfff) return false;
    i += length;
  }
  return true;
}

namespace {

// Bytes of the well-formed character that starts `text`, or 0. IsValidUtf8 on growing prefixes
// finds it: a prefix shorter than the lead byte announces is truncated, hence invalid.
size_t CharacterLength(std::string_view text) {
  for (size_t length = 1; length <= 4 && length <= text.size(); ++length) {
    if (IsValidUtf8(text.substr(0, length))) return length;
  }
  return 0;
}

bool IsControl(std::string_view character) {
  const auto lead = static_cast<uint8_t>(character[0]);
  if (character.size() == 1) return lead < 0x20 || lead == 0x7f;
  // U+0080..U+009F are encoded as C2 80..C2 9F.
  return character.size() == 2 && lead == 0xc2 && static_cast<uint8_t>(character[1]) < 0xa0;
}

void AppendHex(std::string& out, std::string_view bytes) {
  for (char c : bytes) {
    char buffer[5];
    std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
    out += buffer;
  }
}

}  // namespace

std::string EscapeForMessage(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = CharacterLength(text.substr(i));
    if (length == 0) {
      AppendHex(out, text.substr(i, 1));
      ++i;
      continue;
    }
    const std::string_view character = text.substr(i, length);
    if (character == "\\") {
      out += "\\\\";
    } else if (IsControl(character)) {
      AppendHex(out, character);
    } else {
      out += character;
    }
    i += length;
  }
  return out;
}

}  // namespace weightsync
