// The `weightsync` command line: each subcommand lives in its own cmd_*.cc and registers itself on
// the app here. A subcommand's callback stores its exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace weightsync::cli {

void AddInfoCommand(CLI::App& app, int& exit_code);
void AddConvertCommand(CLI::App& app, int& exit_code);
void AddVerifyCommand(CLI::App& app, int& exit_code);
void AddStoreCommand(CLI::App& app, int& exit_code);
void AddPlanCommand(CLI::App& app, int& exit_code);
void AddBenchCommand(CLI::App& app, int& exit_code);
void AddOrchestrateCommand(CLI::App& app, int& exit_code);
void AddDemoCommand(CLI::App& app, int& exit_code);
void AddDemoWorkerCommand(CLI::App& app, int& exit_code);

}  // namespace weightsync::cli
