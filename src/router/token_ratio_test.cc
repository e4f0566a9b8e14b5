// The router's token estimate over requests read by the wire module (whose own tests,
// wire/completion_request_test.cc, check the reader field by field).
#include "router/token_ratio.h"

#include <gtest/gtest.h>

namespace gimbal::router {
namespace {

TEST(TokenRatio, EstimatesFromCharactersAndIds) {
  TokenRatio ratio(4, false);
  auto r =
      wire::ParseCompletionRequest(R"({"model":"m","prompt":"abcdefgh","max_tokens":7})", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ratio.Estimate(r.value()), 2);
  auto ids = wire::ParseCompletionRequest(R"({"prompt":[1,2,3]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ratio.Estimate(ids.value()), 3);
  // Chat messages add their template characters; an empty prompt still counts one token.
  auto chat =
      wire::ParseCompletionRequest(R"({"messages":[{"role":"user","content":"hello"}]})", true);
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(ratio.Estimate(chat.value()), 4);  // ceil((5 + 8) / 4)
  auto empty = wire::ParseCompletionRequest(R"({"prompt":""})", false);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(ratio.Estimate(empty.value()), 1);
}

TEST(TokenRatio, WantsUsageOnlyWhenItWouldLearn) {
  TokenRatio adapt(4, true);
  EXPECT_TRUE(adapt.Wants(64));
  EXPECT_FALSE(adapt.Wants(63));  // too short a prompt to learn from
  TokenRatio fixed(4, false);
  EXPECT_FALSE(fixed.Wants(10000));
  adapt.Observe(63, 1);  // ignored, as Wants says
  EXPECT_EQ(adapt.get(), 4);
}

TEST(TokenRatio, LearnsFromUsage) {
  TokenRatio r(4, true);
  for (int i = 0; i < 100; ++i) r.Observe(300, 100);
  EXPECT_NEAR(r.get(), 3.0, 0.01);
  TokenRatio fixed(4, false);
  fixed.Observe(300, 100);
  EXPECT_EQ(fixed.get(), 4);
}

}  // namespace
}  // namespace gimbal::router
