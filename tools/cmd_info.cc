// `weightsync info`: version, the configuration table with current values, optional backends.
#include <iostream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/config.h"
#include "core/optional_library.h"
#include "model/model_spec.h"
#include "transport/transport.h"

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
    // Transports as this process would create them (their libraries are loaded at run time).
    // First: probing libucp.so.0 by name below leaves UCX's libucm loaded, and the ucx backend
    // refuses a transport.ucx_library_dir whose libraries would mix with another UCX's.
    std::vector<std::pair<std::string, transport::Capabilities>> transports;
    if (auto options = transport::OptionsFromConfig(*config); options.ok()) {
      for (const auto& backend : transport::BackendNames()) {
        transports.push_back({backend, transport::ProbeBackend(backend, *options)});
      }
    }
    auto libraries = ProbeOptionalLibraries();
    Result<ModelSpecLibrary> specs = ModelSpecLibrary::FromEnvironment();
    if (!specs.ok()) {
      std::cerr << "weightsync info: " << specs.status().ToString() << "\n";
      exit_code = 2;
      return;
    }
    // name -> (hash, source formats, target formats); a spec that fails to load shows its error.
    std::vector<std::tuple<std::string, std::string, std::vector<std::string>,
                           std::vector<std::string>>> models;
    for (const auto& name : specs->ModelNames()) {
      Result<ModelSpec> spec = specs->Load(name);
      if (!spec.ok()) {
        models.push_back({name, spec.status().ToString(), {}, {}});
        continue;
      }
      std::vector<std::string> sources, targets;
      for (const auto& [format, body] : spec->source_formats) sources.push_back(format);
      for (const auto& [format, body] : spec->target_formats) targets.push_back(format);
      models.push_back({name, spec->hash, sources, targets});
    }
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
      for (const auto& [backend, caps] : transports) {
        out["transports"][backend] = {
            {"available", caps.available}, {"reason", caps.unavailable_reason},
            {"host_memory", caps.host_memory}, {"gpu_memory", caps.gpu_memory},
            {"cross_host", caps.cross_host}, {"detail", caps.detail}};
      }
      for (const auto& [name, hash, sources, targets] : models) {
        out["models"][name] = {{"hash", hash}, {"source_formats", sources},
                               {"target_formats", targets}};
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
    std::cout << "\nTransports:\n";
    for (const auto& [backend, caps] : transports) {
      std::cout << "  " << backend << ": ";
      if (!caps.available) {
        std::cout << caps.unavailable_reason << "\n";
        continue;
      }
      std::cout << "available (" << (caps.host_memory ? "host" : "")
                << (caps.host_memory && caps.gpu_memory ? "+" : "")
                << (caps.gpu_memory ? "GPU" : "") << " memory"
                << (caps.cross_host ? ", cross-host" : ", this host only") << ")"
                << (caps.detail.empty() ? "" : " " + caps.detail) << "\n";
    }
    std::cout << "\nModel specs (built in, plus WEIGHTSYNC_MODEL_PATH):\n";
    for (const auto& [name, hash, sources, targets] : models) {
      std::string s, t;
      for (const auto& f : sources) s += (s.empty() ? "" : ", ") + f;
      for (const auto& f : targets) t += (t.empty() ? "" : ", ") + f;
      std::cout << "  " << name << "  (" << hash << ")  sources: " << s << "  targets: " << t
                << "\n";
    }
  });
}

}  // namespace weightsync::cli
