#include "core/environment_check.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>

#include "core/config.h"
#include "core/log.h"

namespace weightsync {
namespace {

TEST(EnvironmentCheck, NamesMisspeltVariablesAndTheNearestSetting) {
  const char* environment[] = {"PATH=/bin",
                               "WEIGHTSYNC_PLAN_STAGNG_BUDGET=1GiB",
                               "WEIGHTSYNC_PLAN_STAGING_BUDGET=1GiB",
                               "WEIGHTSYNC_STORE_TOKEN=secret",
                               "WEIGHTSYNC_TEST_TORCH_DEVICES=cpu",
                               "WEIGHTSYNC_SOMETHING_ELSE_ENTIRELY=1",
                               nullptr};
  auto unknown = UnknownWeightsyncVariables(environment);
  ASSERT_EQ(unknown.size(), 2u);
  EXPECT_EQ(unknown[0].name, "WEIGHTSYNC_PLAN_STAGNG_BUDGET");
  EXPECT_EQ(unknown[0].nearest, "WEIGHTSYNC_PLAN_STAGING_BUDGET");
  EXPECT_EQ(unknown[1].name, "WEIGHTSYNC_SOMETHING_ELSE_ENTIRELY");
  EXPECT_EQ(unknown[1].nearest, "");
}

TEST(EnvironmentCheck, EverySettingsVariableIsKnown) {
  std::vector<std::string> entries;
  for (const auto& option : ConfigTable()) {
    entries.push_back(ConfigEnvironmentName(option.name) + "=x");
  }
  std::vector<const char*> environment;
  for (const auto& entry : entries) environment.push_back(entry.c_str());
  environment.push_back(nullptr);
  EXPECT_TRUE(UnknownWeightsyncVariables(environment.data()).empty());
}

std::mutex captured_mutex;
std::vector<std::string> captured;
void Capture(LogLevel, std::string_view message, void*) {
  std::lock_guard lock(captured_mutex);
  captured.emplace_back(message);
}

TEST(EnvironmentCheck, FromEnvironmentWarnsOncePerVariable) {
  setenv("WEIGHTSYNC_CONVERT_THREDS", "3", 1);
  SetLogSink(&Capture, nullptr);
  ASSERT_TRUE(Config::FromEnvironment().ok());
  ASSERT_TRUE(Config::FromEnvironment().ok());
  SetLogSink(nullptr, nullptr);
  unsetenv("WEIGHTSYNC_CONVERT_THREDS");
  int warnings = 0;
  for (const auto& line : captured) {
    if (line.find("WEIGHTSYNC_CONVERT_THREDS") == std::string::npos) continue;
    ++warnings;
    EXPECT_NE(line.find("did you mean WEIGHTSYNC_CONVERT_THREADS?"), std::string::npos) << line;
  }
  EXPECT_EQ(warnings, 1);
}

}  // namespace
}  // namespace weightsync
