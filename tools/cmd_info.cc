// `weightsync info`: version, the configuration table with current values, optional backends.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/config.h"
#include "core/optional_library.h"

namespace weightsync::cli {

void AddInfoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Print the version, the config table and the backends");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print one JSON object");
  cmd->callback([json, &exit_code] {
    auto config = Config::FromEnvironment();
    if (!config.ok()) {
      std::cerr << "weightsync info: " << config.status().ToString() << "\n";
      exit_code = 2;
      return;
    }
    auto libraries = ProbeOptionalLibraries();
    if (*json) {
      nlohmann::json out;
      out["version"] = WEIGHTSYNC_VERSION;
      for (const auto& option : ConfigTable()) {
        std::string name(option.name);
        out["config"][name] = {{"value", config->Value(name)},
                               {"default", option.default_value},
                               {"units", ConfigUnitsName(option.units)},
                               {"origin", config->Origin(name)},
                               {"help", option.help}};
      }
      for (const auto& lib : libraries) {
        out["backends"][lib.name] = {{"available", lib.available}, {"detail", lib.detail}};
      }
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::cout << "weightsync " << WEIGHTSYNC_VERSION << "\n\nConfiguration (set with "
              << "WEIGHTSYNC_<NAME>, dots as underscores):\n"
              << config->Describe() << "\nOptional libraries:\n";
    for (const auto& lib : libraries) {
      std::cout << "  " << lib.name << ": " << (lib.available ? "available (" : "") << lib.detail
                << (lib.available ? ")" : "") << "\n";
    }
  });
}

}  // namespace weightsync::cli
