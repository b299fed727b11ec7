#include <CLI/CLI.hpp>

#include "commands.h"
#include "core/config.h"
#include "core/log.h"

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
  weightsync::cli::AddStoreCommand(app, exit_code);
  weightsync::cli::AddPlanCommand(app, exit_code);
  weightsync::cli::AddBenchCommand(app, exit_code);
  weightsync::cli::AddOrchestrateCommand(app, exit_code);
  weightsync::cli::AddDemoCommand(app, exit_code);
  weightsync::cli::AddDemoWorkerCommand(app, exit_code);

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
    return app.exit(e);
  }
  return exit_code;
}
