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

TEST(ParamsTest, NarrowedIntegersAreRangeCheckedAndUnderflowIsANumber) {
  Params p({{"moves", "4294967296"}, {"steps", "-1"}, {"tiny", "1e-308"}, {"big", "1e309"}});
  EXPECT_EQ(p.GetInt32("moves", 7), 7);  // 2^32 would have wrapped to 0
  EXPECT_EQ(p.GetInt("steps", 3, 0, 100), 3);
  EXPECT_EQ(p.GetDouble("tiny", 1), 1e-308);
  EXPECT_EQ(p.GetDouble("big", 1), 1);
  const Status s = p.Validate("x");
  EXPECT_NE(s.message().find("'moves' expects an integer in [-2147483648, 2147483647], got "
                             "'4294967296'"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("'steps' expects an integer in [0, 100], got '-1'"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("'big' expects a number"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("'tiny'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace gimbal
