#include "core/params.h"

#include <gtest/gtest.h>

namespace gimbal {
namespace {

TEST(ParamsTest, TypedGettersWithDefaults) {
  Params p({{"w", "2.5"}, {"n", "7"}, {"on", "true"}, {"name", "x"}});
  EXPECT_DOUBLE_EQ(p.GetDouble("w", 1), 2.5);
  EXPECT_EQ(p.GetInt("n", 0), 7);
  EXPECT_TRUE(p.GetBool("on", false));
  EXPECT_EQ(p.GetString("name", ""), "x");
  EXPECT_DOUBLE_EQ(p.GetDouble("absent", 3), 3);
  EXPECT_TRUE(p.Validate("policy 'x'").ok());
}

TEST(ParamsTest, UnknownAndMalformedKeysAreReported) {
  Params p({{"w_kvv", "1"}, {"beta", "fast"}});
  p.GetDouble("w_kv", 1);
  p.GetDouble("beta", 1);
  Status s = p.Validate("dispatch policy 'gimbal'");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("w_kvv"), std::string::npos);
  EXPECT_NE(s.message().find("'beta' expects a number, got 'fast'"), std::string::npos);
  EXPECT_NE(s.message().find("dispatch policy 'gimbal'"), std::string::npos);
  EXPECT_NE(s.message().find("known: beta, w_kv"), std::string::npos);
}

}  // namespace
}  // namespace gimbal
