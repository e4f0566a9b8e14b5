#include "wire/priority_tag.h"

#include <string>

#include <gtest/gtest.h>

namespace gimbal::wire {
namespace {

// SetPriority keeps every byte but the one member, and refuses what is not one object.
TEST(SetPriority, ReplacesOrInsertsOnlyThePriorityMember) {
  EXPECT_EQ(SetPriority("{}", 3).value(), "{\"priority\":3}");
  EXPECT_EQ(SetPriority(" {\"a\": [1, {\"priority\": 9}]} ", -2).value(),
            " {\"priority\":-2,\"a\": [1, {\"priority\": 9}]} ");
  EXPECT_EQ(SetPriority("{\"priority\": 1, \"b\": \"}\", \"priority\" : 5}", 7).value(),
            "{\"priority\": 7, \"b\": \"}\", \"priority\" : 7}");
  EXPECT_EQ(SetPriority("{\"pri\\u006frity\": 1}", 4).value(), "{\"pri\\u006frity\": 4}");
  EXPECT_FALSE(SetPriority("[1]", 1).ok());
  EXPECT_FALSE(SetPriority("{\"a\": 1} x", 1).ok());
  EXPECT_FALSE(SetPriority("{\"a\": [}", 1).ok());
  const std::string deep = "{\"a\": " + std::string(200, '[') + std::string(200, ']') + "}";
  auto refused = SetPriority(deep, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("deeper than 128"), std::string::npos);
}

TEST(CheckJsonNesting, CountsBracketsOutsideStrings) {
  EXPECT_TRUE(CheckJsonNesting("[[1]]", 2).ok());
  EXPECT_FALSE(CheckJsonNesting("[[[1]]]", 2).ok());
  EXPECT_TRUE(CheckJsonNesting("[\"[[[[\\\"[[\"]", 1).ok());
  const Status deep = CheckJsonNesting(std::string(kMaxJsonDepth + 1, '{'));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.message().find("at byte 128"), std::string::npos) << deep.message();
}

}  // namespace
}  // namespace gimbal::wire
