#include "model/json_fields.h"

#include <cstdint>
#include <limits>

#include "io/utf8.h"

namespace weightsync {

using nlohmann::json;

std::string JsonTypeName(const json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number_float()) return "a number with a fraction or exponent";
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "a list";
    case json::value_t::object:
      return "an object";
    default:
      return "an unexpected JSON value";
  }
}

namespace {

Status WrongType(const json& value, std::string_view field, std::string_view expected) {
  return InvalidArgument("field '", EscapeForMessage(field), "' must be ", expected, ", not ",
                         JsonTypeName(value));
}

}  // namespace

template <>
Result<std::string> JsonAs<std::string>(const json& value, std::string_view field) {
  if (!value.is_string()) return WrongType(value, field, "a string");
  return value.get<std::string>();
}

template <>
Result<bool> JsonAs<bool>(const json& value, std::string_view field) {
  if (!value.is_boolean()) return WrongType(value, field, "true or false");
  return value.get<bool>();
}

template <>
Result<int64_t> JsonAs<int64_t>(const json& value, std::string_view field) {
  if (!value.is_number_integer()) return WrongType(value, field, "an integer");
  // nlohmann keeps integers past INT64_MAX as unsigned; get<int64_t> would wrap them negative.
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument("field '", EscapeForMessage(field), "' = ", value.get<uint64_t>(),
                           " is too large");
  }
  return value.get<int64_t>();
}

}  // namespace weightsync
