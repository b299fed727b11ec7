// Typed reads of JSON object fields for the files users write (model specs, config.json).
//
// nlohmann::json's value() and get<T>() throw type_error on a field of the wrong JSON type; these
// return an InvalidArgument naming the field and the type found, so no exception escapes a parser.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync {

// "a string", "an integer", "null", ...: for messages.
std::string JsonTypeName(const nlohmann::json& value);

// `value` as T (std::string, bool or int64_t); errors name `field`.
template <typename T>
Result<T> JsonAs(const nlohmann::json& value, std::string_view field);

// The field `key` of `object` (which must be an object) as T; nullopt when absent.
template <typename T>
Result<std::optional<T>> OptionalField(const nlohmann::json& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end()) return std::optional<T>();
  WS_ASSIGN_OR_RETURN(T value, JsonAs<T>(*it, key));
  return std::optional<T>(std::move(value));
}

// The same with a default for an absent field.
template <typename T>
Result<T> FieldOr(const nlohmann::json& object, std::string_view key, T fallback) {
  WS_ASSIGN_OR_RETURN(std::optional<T> value, OptionalField<T>(object, key));
  return value ? std::move(*value) : std::move(fallback);
}

}  // namespace weightsync
