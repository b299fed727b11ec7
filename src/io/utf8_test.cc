#include "io/utf8.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("model.layers.0.weight"));
  EXPECT_TRUE(IsValidUtf8("gr\xc3\xbc\xc3\x9f"));  // U+00FC U+00DF
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));        // U+20AC
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));    // U+1F600
}

TEST(Utf8, RefusesMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(Utf8, EscapeForMessageKeepsPrintableTextAndEscapesTheRest) {
  using namespace std::string_literals;
  EXPECT_EQ(EscapeForMessage("model.layers.0.weight"), "model.layers.0.weight");
  EXPECT_EQ(EscapeForMessage("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"),
            "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeForMessage("a\0b\xff"s), R"(a\x00b\xff)");
  EXPECT_EQ(EscapeForMessage("\t\n\x1b[31m\x7f"), R"(\x09\x0a\x1b[31m\x7f)");
  EXPECT_EQ(EscapeForMessage("\xc2\x85"), R"(\xc2\x85)");          // U+0085, a C1 control
  EXPECT_EQ(EscapeForMessage("\xc3"), R"(\xc3)");                  // truncated
  EXPECT_EQ(EscapeForMessage("\xed\xa0\x80"), R"(\xed\xa0\x80)");  // surrogate
  // A backslash is doubled, so an escaped name never prints like another name.
  EXPECT_EQ(EscapeForMessage(R"(a\x00)"), R"(a\\x00)");
  EXPECT_NE(EscapeForMessage("a\0"s), EscapeForMessage(R"(a\x00)"));
}

}  // namespace
}  // namespace weightsync
