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

}  // namespace
}  // namespace weightsync
