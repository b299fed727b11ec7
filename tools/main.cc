#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "commands.h"
#include "core/config.h"
#include "core/log.h"

namespace {

// Exit codes of every command (docs/cli.md): 0 success, 1 the operation failed, 2 usage error.
constexpr int kUsageError = 2;

// The first word CLI11 could not place, when it names no command ("weightsync bogus").
std::string UnknownCommand(const CLI::App& app) {
  if (app.get_subcommands().empty()) {
    for (const std::string& word : app.remaining()) {
      if (!word.empty() && word[0] != '-') return word;
    }
  }
  return "";
}

std::string KnownCommands(CLI::App& app) {
  std::string names;
  for (const CLI::App* command : app.get_subcommands({})) {
    if (command->get_group().empty()) continue;  // hidden (the demo's worker)
    names += (names.empty() ? "" : ", ") + command->get_name();
  }
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weightsync: move freshly trained weights into running inference engines"};
  app.set_version_flag("--version", std::string("weightsync ") + WEIGHTSYNC_VERSION);
  app.require_subcommand(1);
  std::string log_level;  // default: log.level (WEIGHTSYNC_LOG_LEVEL, else info)
  app.add_option("--log-level", log_level,
                 "debug, info, warning, error, off (default: log.level, WEIGHTSYNC_LOG_LEVEL)");

  int exit_code = 0;
  weightsync::cli::AddInfoCommand(app, exit_code);
  weightsync::cli::AddConvertCommand(app, exit_code);
  weightsync::cli::AddVerifyCommand(app, exit_code);
  weightsync::cli::AddStoreCommand(app, exit_code);
  weightsync::cli::AddPlanCommand(app, exit_code);
  weightsync::cli::AddBenchCommand(app, exit_code);
  weightsync::cli::AddOrchestrateCommand(app, exit_code);
  weightsync::cli::AddDemoCommand(app, exit_code);
  weightsync::cli::AddDemoWorkerCommand(app, exit_code);
  // After the commands (they would inherit it): an unknown command reaches UnknownCommand instead
  // of CLI11's "A subcommand is required".
  app.allow_extras();

  app.parse_complete_callback([&] {
    std::string source = "--log-level";
    if (log_level.empty()) {
      auto config = weightsync::Config::FromEnvironment();
      if (!config.ok()) throw CLI::ValidationError("environment", config.status().message());
      log_level = config->Value("log.level");
      source = "log.level (" + config->Origin("log.level") + ")";
    }
    auto level = weightsync::ParseLogLevel(log_level);
    if (!level.ok()) throw CLI::ValidationError(source, level.status().message());
    weightsync::SetLogLevel(*level);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (std::string unknown = UnknownCommand(app); !unknown.empty()) {
      std::cerr << "weightsync: unknown command '" << unknown << "'; the commands are "
                << KnownCommands(app) << " (weightsync --help)\n";
      return kUsageError;
    }
    // CLI11 prints the error or the help; its own codes (105, 106, 109...) become one usage code.
    return app.exit(e) == 0 ? 0 : kUsageError;
  }
  if (std::string unknown = UnknownCommand(app); !unknown.empty()) {
    std::cerr << "weightsync: unexpected argument '" << unknown << "'\n";
    return kUsageError;
  }
  return exit_code;
}
