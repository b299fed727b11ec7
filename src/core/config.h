// The declarative configuration table: every knob weightsync has, with its default, units and help.
//
// One table for the whole library (config_table.cc), printed by `weightsync info`. Values come
// from, in increasing priority: the defaults, environment variables WEIGHTSYNC_<NAME> (dots become
// underscores, upper case: convert.threads -> WEIGHTSYNC_CONVERT_THREADS), and explicit Set() calls
// (CLI flags, API arguments). Unknown names and unparsable values are errors naming the option.
//
// Threading: a Config is a value; copy it freely. It is not synchronized for concurrent Set().
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "weightsync/status.h"

namespace weightsync {

enum class ConfigUnits : uint8_t { kCount, kBytes, kSeconds, kBool, kString };

struct ConfigOption {
  std::string_view name;
  std::string_view default_value;
  ConfigUnits units;
  std::string_view help;
};

std::span<const ConfigOption> ConfigTable();
// The environment variable of an option: "plan.staging_budget" -> "WEIGHTSYNC_PLAN_STAGING_BUDGET".
std::string ConfigEnvironmentName(std::string_view option);
std::string_view ConfigUnitsName(ConfigUnits units);

// Value parsers, also used for CLI flags: "5GiB", "512KB", "1048576"; "30s", "250ms", "2m"; "1",
// "true", "yes", "on".
Result<uint64_t> ParseBytes(std::string_view text);
Result<double> ParseSeconds(std::string_view text);
Result<bool> ParseBool(std::string_view text);
Result<int64_t> ParseCount(std::string_view text);

// The table's default of `name`, parsed: what options structs initialise their members with, so
// every default is written once, in config_table.cc. An unknown name, or a default of other units,
// gives 0 or "" (config_test ties every struct's defaults to the table, so such a typo fails it).
int64_t DefaultCount(std::string_view name);
uint64_t DefaultBytes(std::string_view name);
double DefaultSeconds(std::string_view name);
std::string DefaultString(std::string_view name);

class Config {
 public:
  // Defaults overlaid with WEIGHTSYNC_* environment variables; a bad environment value is an error.
  static Result<Config> FromEnvironment();
  static Config Defaults();

  Status Set(std::string_view name, std::string_view value);

  Result<int64_t> GetCount(std::string_view name) const;
  Result<uint64_t> GetBytes(std::string_view name) const;
  Result<double> GetSeconds(std::string_view name) const;
  Result<bool> GetBool(std::string_view name) const;
  Result<std::string> GetString(std::string_view name) const;

  // The value as text, whatever its units ("" for an unknown name).
  std::string Value(std::string_view name) const;

  // Where the current value came from: "default", "env WEIGHTSYNC_X" or "set".
  std::string Origin(std::string_view name) const;

  // A table of name, value, units, origin and help, for `weightsync info`.
  std::string Describe() const;

 private:
  struct Entry {
    std::string value;
    std::string origin;
  };
  Result<const Entry*> Find(std::string_view name, ConfigUnits expected) const;
  std::map<std::string, Entry, std::less<>> values_;
};

}  // namespace weightsync
