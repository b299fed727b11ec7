// `weightsync verify`: is a converted checkpoint exactly what `convert` makes of its source?
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "conversion_flags.h"
#include "model/checkpoint_verification.h"

namespace weightsync::cli {
namespace {

int RunVerify(const ConversionFlags& flags) {
  auto fail = [](const Status& status) {
    std::cerr << "weightsync verify: " << status.ToString() << "\n";
    return 1;
  };
  Result<ModelSpec> model = LoadModelSpec(flags);
  if (!model.ok()) return fail(model.status());
  Result<Config> config = ConversionConfig(flags);
  if (!config.ok()) return fail(config.status());
  const ConversionPlanOptions plan{flags.source_format, flags.target_format, flags.ignore,
                                   flags.partial};
  const int threads = static_cast<int>(*config->GetCount("convert.threads"));
  Result<VerificationReport> report =
      VerifyCheckpoint(*model, flags.input, flags.output, plan, threads);
  if (!report.ok()) return fail(report.status());
  const VerificationReport& r = *report;
  if (flags.json) {
    nlohmann::json out = {{"equal", r.ok()},
                          {"tensors_compared", r.tensors_compared},
                          {"tensors_equal", r.tensors_equal},
                          {"bytes_compared", r.bytes_compared},
                          {"differences", r.differences}};
    std::cout << out.dump(2) << "\n";
  } else {
    for (const std::string& line : r.differences) std::printf("DIFFERS: %s\n", line.c_str());
    std::printf("%s: %lld of %lld tensors equal (%.3f GB compared) to converting %s again%s\n",
                flags.output.c_str(), static_cast<long long>(r.tensors_equal),
                static_cast<long long>(r.tensors_compared),
                static_cast<double>(r.bytes_compared) / 1e9, flags.input.c_str(),
                r.ok() ? "" : StrCat("; ", r.differences.size(), " differences").c_str());
  }
  return r.ok() ? 0 : 1;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ConversionFlags>();
  auto* cmd = app.add_subcommand(
      "verify",
      "Check that a converted checkpoint is byte for byte what `convert` makes of its source");
  AddConversionFlags(*cmd, *flags, "The converted checkpoint (what `convert --output` wrote)");
  cmd->callback([flags, &exit_code] { exit_code = RunVerify(*flags); });
}

}  // namespace weightsync::cli
