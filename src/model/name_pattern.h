// Tensor-name patterns with integer variables: "model.layers.{L}.mlp.experts.{E}.up_proj.weight".
//
// A variable matches a non-negative decimal integer written without leading zeros, so formatting a
// match gives back the original name. Matching is a hand-written scan rather than std::regex: a
// GLM-5 checkpoint has ~100k names checked against dozens of patterns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "weightsync/status.h"

namespace weightsync {

using Bindings = std::map<std::string, int64_t, std::less<>>;

class NamePattern {
 public:
  static Result<NamePattern> Parse(std::string_view text);

  // True if `name` matches; variables already present in *bindings must match their value.
  bool Match(std::string_view name, Bindings* bindings) const;
  // The name for these bindings; every variable of the pattern must be bound.
  Result<std::string> Format(const Bindings& bindings) const;

  bool HasVariable(std::string_view variable) const;
  const std::vector<std::string>& variables() const { return variables_; }
  const std::string& text() const { return text_; }

 private:
  struct Segment {
    bool is_variable = false;
    std::string text;  // literal text, or the variable name
  };
  std::string text_;
  std::vector<Segment> segments_;
  std::vector<std::string> variables_;
};

}  // namespace weightsync
