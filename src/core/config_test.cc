#include "core/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace weightsync {
namespace {

TEST(Config, ParsesUnits) {
  EXPECT_EQ(ParseBytes("5GiB").value(), 5ull << 30);
  EXPECT_EQ(ParseBytes("2 MB").value(), 2000000u);
  EXPECT_EQ(ParseBytes("4096").value(), 4096u);
  EXPECT_FALSE(ParseBytes("5 parsecs").ok());
  EXPECT_FALSE(ParseBytes("").ok());
  EXPECT_DOUBLE_EQ(ParseSeconds("250ms").value(), 0.25);
  EXPECT_DOUBLE_EQ(ParseSeconds("2m").value(), 120);
  EXPECT_TRUE(ParseBool("yes").value());
  EXPECT_FALSE(ParseBool("maybe").ok());
  EXPECT_EQ(ParseCount("-3").value(), -3);
  EXPECT_FALSE(ParseCount("3x").ok());
}

TEST(Config, DefaultsEnvironmentAndSet) {
  Config defaults = Config::Defaults();
  EXPECT_EQ(defaults.GetCount("convert.threads").value(), 0);
  EXPECT_EQ(defaults.Origin("convert.threads"), "default");

  setenv("WEIGHTSYNC_CONVERT_THREADS", "3", 1);
  Config env = Config::FromEnvironment().value();
  EXPECT_EQ(env.GetCount("convert.threads").value(), 3);
  EXPECT_EQ(env.Origin("convert.threads"), "env WEIGHTSYNC_CONVERT_THREADS");

  setenv("WEIGHTSYNC_CONVERT_THREADS", "many", 1);
  Result<Config> bad = Config::FromEnvironment();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("WEIGHTSYNC_CONVERT_THREADS"), std::string::npos);
  unsetenv("WEIGHTSYNC_CONVERT_THREADS");

  EXPECT_TRUE(env.Set("convert.max_shard_size", "1GiB").ok());
  EXPECT_EQ(env.GetBytes("convert.max_shard_size").value(), 1ull << 30);
  EXPECT_EQ(env.Set("no.such.option", "1").code(), StatusCode::kNotFound);
  EXPECT_FALSE(env.Set("convert.max_shard_size", "big").ok());
  EXPECT_EQ(env.GetSeconds("convert.threads").status().code(), StatusCode::kInternal);
}

TEST(Config, DescribeListsEveryOption) {
  std::string table = Config::Defaults().Describe();
  for (const auto& option : ConfigTable()) {
    EXPECT_NE(table.find(option.name), std::string::npos) << option.name;
  }
}

}  // namespace
}  // namespace weightsync
