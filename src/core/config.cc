#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "core/environment_check.h"

namespace weightsync {
namespace {

const ConfigOption* FindOption(std::string_view name) {
  for (const auto& option : ConfigTable()) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "12.5GiB" into 12.5 and "GiB".
Result<std::pair<double, std::string_view>> SplitNumber(std::string_view text) {
  text = Trim(text);
  size_t end = 0;
  while (end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) {
    ++end;
  }
  if (end == 0) return InvalidArgument("'", text, "' does not start with a number");
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + end, number);
  if (ec != std::errc() || ptr != text.data() + end) {
    return InvalidArgument("'", text, "' is not a number");
  }
  return std::make_pair(number, Trim(text.substr(end)));
}

Status CheckValue(const ConfigOption& option, std::string_view value) {
  Status status;
  switch (option.units) {
    case ConfigUnits::kCount:
      status = ParseCount(value).status();
      break;
    case ConfigUnits::kBytes:
      status = ParseBytes(value).status();
      break;
    case ConfigUnits::kSeconds:
      status = ParseSeconds(value).status();
      break;
    case ConfigUnits::kBool:
      status = ParseBool(value).status();
      break;
    case ConfigUnits::kString:
      break;
  }
  return status.WithContext(StrCat("option ", option.name));
}

}  // namespace

std::string_view ConfigUnitsName(ConfigUnits units) {
  switch (units) {
    case ConfigUnits::kCount:
      return "count";
    case ConfigUnits::kBytes:
      return "bytes";
    case ConfigUnits::kSeconds:
      return "seconds";
    case ConfigUnits::kBool:
      return "bool";
    case ConfigUnits::kString:
      return "string";
  }
  return "?";
}

Result<int64_t> ParseCount(std::string_view text) {
  text = Trim(text);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgument("'", text, "' is not an integer");
  }
  return value;
}

Result<uint64_t> ParseBytes(std::string_view text) {
  WS_ASSIGN_OR_RETURN(auto parts, SplitNumber(text));
  auto [number, suffix] = parts;
  static constexpr std::pair<std::string_view, double> kSuffixes[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1e3},
      {"MB", 1e6},
      {"GB", 1e9},
      {"TB", 1e12},
      {"KiB", 1024.0},
      {"MiB", 1048576.0},
      {"GiB", 1073741824.0},
      {"TiB", 1099511627776.0},
      {"K", 1024.0},
      {"M", 1048576.0},
      {"G", 1073741824.0},
  };
  for (auto [name, multiplier] : kSuffixes) {
    if (suffix == name) {
      double bytes = number * multiplier;
      if (bytes > 1.8e19) return InvalidArgument("'", text, "' is too large");
      return static_cast<uint64_t>(bytes);
    }
  }
  return InvalidArgument("'", text, "' has an unknown size unit (B, KB, MB, GB, KiB, MiB, GiB)");
}

Result<double> ParseSeconds(std::string_view text) {
  WS_ASSIGN_OR_RETURN(auto parts, SplitNumber(text));
  auto [number, suffix] = parts;
  if (suffix.empty() || suffix == "s") return number;
  if (suffix == "ms") return number / 1e3;
  if (suffix == "us") return number / 1e6;
  if (suffix == "m" || suffix == "min") return number * 60;
  if (suffix == "h") return number * 3600;
  return InvalidArgument("'", text, "' has an unknown time unit (us, ms, s, m, h)");
}

Result<bool> ParseBool(std::string_view text) {
  text = Trim(text);
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return InvalidArgument("'", text, "' is not a boolean (true/false, yes/no, on/off, 1/0)");
}

namespace {

// The default text of `name` when it has `units`; nullopt otherwise.
std::optional<std::string_view> DefaultText(std::string_view name, ConfigUnits units) {
  const ConfigOption* option = FindOption(name);
  if (option == nullptr || option->units != units) return std::nullopt;
  return option->default_value;
}

template <typename T, typename Parse>
T ParsedDefault(std::string_view name, ConfigUnits units, Parse parse) {
  auto text = DefaultText(name, units);
  if (!text) return T{};
  auto value = parse(*text);
  return value.ok() ? *value : T{};
}

}  // namespace

int64_t DefaultCount(std::string_view name) {
  return ParsedDefault<int64_t>(name, ConfigUnits::kCount, ParseCount);
}
uint64_t DefaultBytes(std::string_view name) {
  return ParsedDefault<uint64_t>(name, ConfigUnits::kBytes, ParseBytes);
}
double DefaultSeconds(std::string_view name) {
  return ParsedDefault<double>(name, ConfigUnits::kSeconds, ParseSeconds);
}
std::string DefaultString(std::string_view name) {
  return std::string(DefaultText(name, ConfigUnits::kString).value_or(""));
}

Config Config::Defaults() {
  Config config;
  for (const auto& option : ConfigTable()) {
    config.values_[std::string(option.name)] = {std::string(option.default_value), "default"};
  }
  return config;
}

std::string ConfigEnvironmentName(std::string_view option) {
  std::string env = "WEIGHTSYNC_";
  for (char c : option) env.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(c)));
  return env;
}

Result<Config> Config::FromEnvironment() {
  WarnAboutUnknownVariables();
  Config config = Defaults();
  for (const auto& option : ConfigTable()) {
    std::string env = ConfigEnvironmentName(option.name);
    if (const char* value = std::getenv(env.c_str())) {
      WS_RETURN_IF_ERROR(CheckValue(option, value).WithContext(StrCat("environment ", env)));
      config.values_[std::string(option.name)] = {value, "env " + env};
    }
  }
  return config;
}

Status Config::Set(std::string_view name, std::string_view value) {
  const ConfigOption* option = FindOption(name);
  if (!option) return NotFound("unknown option '", name, "' (see `weightsync info`)");
  WS_RETURN_IF_ERROR(CheckValue(*option, value));
  values_[std::string(name)] = {std::string(value), "set"};
  return Status::Ok();
}

Result<const Config::Entry*> Config::Find(std::string_view name, ConfigUnits expected) const {
  const ConfigOption* option = FindOption(name);
  if (!option) return NotFound("unknown option '", name, "'");
  if (option->units != expected) {
    return Internal("option ", name, " has units ", ConfigUnitsName(option->units), ", read as ",
                    ConfigUnitsName(expected));
  }
  auto it = values_.find(name);
  if (it == values_.end()) return Internal("option ", name, " missing from a Config");
  return &it->second;
}

#define WS_CONFIG_GETTER(Method, Type, Units, Parse)                         \
  Result<Type> Config::Method(std::string_view name) const {                 \
    WS_ASSIGN_OR_RETURN(const Entry* entry, Find(name, ConfigUnits::Units)); \
    return Parse(entry->value);                                              \
  }
WS_CONFIG_GETTER(GetCount, int64_t, kCount, ParseCount)
WS_CONFIG_GETTER(GetBytes, uint64_t, kBytes, ParseBytes)
WS_CONFIG_GETTER(GetSeconds, double, kSeconds, ParseSeconds)
WS_CONFIG_GETTER(GetBool, bool, kBool, ParseBool)
WS_CONFIG_GETTER(GetString, std::string, kString, std::string)
#undef WS_CONFIG_GETTER

std::string Config::Value(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string() : it->second.value;
}

std::string Config::Origin(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string("unknown") : it->second.origin;
}

std::string Config::Describe() const {
  size_t name_width = 4, value_width = 5;
  for (const auto& option : ConfigTable()) {
    name_width = std::max(name_width, option.name.size());
    value_width = std::max(value_width, values_.at(std::string(option.name)).value.size());
  }
  std::ostringstream out;
  auto pad = [](std::string_view s, size_t width) {
    return std::string(s) + std::string(width > s.size() ? width - s.size() : 0, ' ');
  };
  out << pad("name", name_width) << "  " << pad("value", value_width) << "  " << pad("units", 7)
      << "  origin / help\n";
  for (const auto& option : ConfigTable()) {
    const Entry& entry = values_.at(std::string(option.name));
    out << pad(option.name, name_width) << "  " << pad(entry.value, value_width) << "  "
        << pad(ConfigUnitsName(option.units), 7) << "  (" << entry.origin << ") " << option.help
        << "\n";
  }
  return out.str();
}

}  // namespace weightsync
