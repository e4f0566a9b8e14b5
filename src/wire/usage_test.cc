#include "wire/usage.h"

#include <string>

#include <gtest/gtest.h>

namespace gimbal::wire {
namespace {

TEST(Usage, FoundInResponsesAndChunks) {
  Usage u;
  EXPECT_TRUE(
      FindUsage(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}})", &u));
  EXPECT_EQ(u.prompt_tokens, 12);
  EXPECT_EQ(u.completion_tokens, 3);
  Usage none;
  EXPECT_FALSE(FindUsage(R"({"choices":[],"usage":null})", &none));
  EXPECT_FALSE(FindUsage("[DONE]", &none));
  EXPECT_EQ(none.prompt_tokens, -1);
}

TEST(Usage, OnlyTheTopLevelObjectCounts) {
  Usage u;
  EXPECT_FALSE(FindUsage(R"({"choices":[{"usage":{"prompt_tokens":5}}]})", &u));
  EXPECT_FALSE(FindUsage(R"([{"usage":{"prompt_tokens":5}}])", &u));
  EXPECT_EQ(u.prompt_tokens, -1);
  // Fields it lacks keep their values.
  u.completion_tokens = 4;
  EXPECT_TRUE(FindUsage(R"({"usage":{"prompt_tokens":5,"x":{"completion_tokens":9}}})", &u));
  EXPECT_EQ(u.prompt_tokens, 5);
  EXPECT_EQ(u.completion_tokens, 4);
}

// A NUL ends nlohmann's input: the text is no JSON, not a shorter one.
TEST(Usage, ANulByteIsNotJson) {
  Usage u;
  EXPECT_FALSE(FindUsage(std::string("{\"usage\": {\"prompt_tokens\": 3}}\0x", 33), &u));
  EXPECT_EQ(u.prompt_tokens, -1);
}

}  // namespace
}  // namespace gimbal::wire
