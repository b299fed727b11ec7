#include "model/name_pattern.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

TEST(NamePattern, MatchesAndFormats) {
  auto p = NamePattern::Parse("model.layers.{L}.mlp.experts.{E}.up_proj.weight").value();
  Bindings b;
  ASSERT_TRUE(p.Match("model.layers.12.mlp.experts.255.up_proj.weight", &b));
  EXPECT_EQ(b.at("L"), 12);
  EXPECT_EQ(b.at("E"), 255);
  EXPECT_EQ(p.Format(b).value(), "model.layers.12.mlp.experts.255.up_proj.weight");
  EXPECT_EQ(p.variables(), (std::vector<std::string>{"L", "E"}));
}

TEST(NamePattern, RejectsNearMisses) {
  auto p = NamePattern::Parse("model.layers.{L}.input_layernorm.weight").value();
  Bindings b;
  EXPECT_FALSE(p.Match("model.layers.x.input_layernorm.weight", &b));
  EXPECT_FALSE(p.Match("model.layers.01.input_layernorm.weight", &b));  // not canonical
  EXPECT_FALSE(p.Match("model.layers.1.input_layernorm.weight.extra", &b));
  EXPECT_FALSE(p.Match("model.layers..input_layernorm.weight", &b));
  EXPECT_TRUE(b.empty());
  Bindings bound{{"L", 3}};
  EXPECT_FALSE(p.Match("model.layers.4.input_layernorm.weight", &bound));
  EXPECT_TRUE(p.Match("model.layers.3.input_layernorm.weight", &bound));
}

TEST(NamePattern, ParseErrors) {
  EXPECT_FALSE(NamePattern::Parse("a.{L").ok());
  EXPECT_FALSE(NamePattern::Parse("a.{}.b").ok());
  EXPECT_FALSE(NamePattern::Parse("a.{L}.{L}").ok());
  EXPECT_FALSE(NamePattern::Parse("a.{L}{E}").ok());
  EXPECT_FALSE(NamePattern::Parse("a.{L1}").ok());
  auto p = NamePattern::Parse("x.{L}").value();
  EXPECT_FALSE(p.Format({}).ok());
}

}  // namespace
}  // namespace weightsync
