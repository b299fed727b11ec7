#include "model/name_pattern.h"

#include <algorithm>
#include <cctype>

#include "io/utf8.h"

namespace weightsync {

Result<NamePattern> NamePattern::Parse(std::string_view text) {
  NamePattern pattern;
  pattern.text_ = std::string(text);
  const std::string quoted = EscapeForMessage(text);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find('{', pos);
    if (open == std::string_view::npos) {
      pattern.segments_.push_back({false, std::string(text.substr(pos))});
      break;
    }
    if (open > pos) pattern.segments_.push_back({false, std::string(text.substr(pos, open - pos))});
    size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return InvalidArgument("name pattern '", quoted, "': unclosed '{'");
    }
    std::string variable(text.substr(open + 1, close - open - 1));
    if (variable.empty() || !std::all_of(variable.begin(), variable.end(), [](char c) {
          return std::isalpha(static_cast<unsigned char>(c));
        })) {
      return InvalidArgument("name pattern '", quoted, "': bad variable '{",
                             EscapeForMessage(variable), "}'");
    }
    if (pattern.HasVariable(variable)) {
      return InvalidArgument("name pattern '", quoted, "': variable {", variable, "} used twice");
    }
    if (!pattern.segments_.empty() && pattern.segments_.back().is_variable) {
      return InvalidArgument("name pattern '", quoted, "': two variables need text between them");
    }
    pattern.segments_.push_back({true, variable});
    pattern.variables_.push_back(variable);
    pos = close + 1;
  }
  return pattern;
}

bool NamePattern::Match(std::string_view name, Bindings* bindings) const {
  Bindings found;
  size_t pos = 0;
  for (const Segment& segment : segments_) {
    if (!segment.is_variable) {
      if (name.substr(pos, segment.text.size()) != segment.text) return false;
      pos += segment.text.size();
      continue;
    }
    size_t end = pos;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    size_t digits = end - pos;
    if (digits == 0 || digits > 12 || (digits > 1 && name[pos] == '0')) return false;
    int64_t value = 0;
    for (size_t i = pos; i < end; ++i) value = value * 10 + (name[i] - '0');
    auto bound = bindings->find(segment.text);
    if (bound != bindings->end() && bound->second != value) return false;
    found[segment.text] = value;
    pos = end;
  }
  if (pos != name.size()) return false;
  bindings->merge(found);
  return true;
}

Result<std::string> NamePattern::Format(const Bindings& bindings) const {
  std::string out;
  for (const Segment& segment : segments_) {
    if (!segment.is_variable) {
      out += segment.text;
      continue;
    }
    auto it = bindings.find(segment.text);
    if (it == bindings.end()) {
      return InvalidArgument("name pattern '", EscapeForMessage(text_), "': variable {",
                             segment.text, "} unbound");
    }
    out += std::to_string(it->second);
  }
  return out;
}

bool NamePattern::HasVariable(std::string_view variable) const {
  return std::find(variables_.begin(), variables_.end(), variable) != variables_.end();
}

}  // namespace weightsync
