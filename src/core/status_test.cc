#include "weightsync/status.h"

#include <gtest/gtest.h>

namespace weightsync {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("value ", x, " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  WS_ASSIGN_OR_RETURN(int half, Half(x));
  WS_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(Status, CarriesCodeAndMessage) {
  Status s = NotFound("tensor ", "model.norm.weight", " missing in rank ", 3);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: tensor model.norm.weight missing in rank 3");
  EXPECT_EQ(s.WithContext("file a").message(), "file a: tensor model.norm.weight missing in rank 3");
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().WithContext("x").ToString(), "OK");
}

TEST(Result, PropagatesErrors) {
  EXPECT_EQ(Quarter(8).value(), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "value 3 is odd");
}

}  // namespace
}  // namespace weightsync
