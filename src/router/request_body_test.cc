#include "router/request_body.h"

#include <gtest/gtest.h>

namespace gimbal::router {
namespace {

TEST(CompletionRequest, ReadsFieldsAndEstimates) {
  auto r = ParseCompletionRequest(
      R"({"model":"m","prompt":"abcdefgh","stream":true,"max_tokens":7,"priority":-2})", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "m");
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->max_output_tokens, 7);
  EXPECT_EQ(r->priority, -2);
  TokenRatio ratio(4, false);
  EXPECT_EQ(ratio.Estimate(r.value()), 2);
  auto ids = ParseCompletionRequest(R"({"prompt":[1,2,3]})", false);
  EXPECT_EQ(ratio.Estimate(ids.value()), 3);
  auto chat = ParseCompletionRequest(
      R"({"messages":[{"role":"user","content":"hello"},{"role":"user","content":[{"type":"text","text":"abc"}]}]})",
      true);
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(chat->prompt_chars, 5 + 3 + 16);
}

TEST(CompletionRequest, RejectsMalformedBodies) {
  EXPECT_FALSE(ParseCompletionRequest("{", false).ok());
  EXPECT_FALSE(ParseCompletionRequest("[]", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","stream":"yes"})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","max_tokens":-1})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"model":"m"})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"messages":"hi"})", true).ok());
}

TEST(TokenRatio, LearnsFromUsage) {
  TokenRatio r(4, true);
  for (int i = 0; i < 100; ++i) r.Observe(300, 100);
  EXPECT_NEAR(r.get(), 3.0, 0.01);
  TokenRatio fixed(4, false);
  fixed.Observe(300, 100);
  EXPECT_EQ(fixed.get(), 4);
}

TEST(Usage, FoundInResponsesAndChunks) {
  Usage u;
  EXPECT_TRUE(FindUsage(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}})", &u));
  EXPECT_EQ(u.prompt_tokens, 12);
  EXPECT_EQ(u.completion_tokens, 3);
  Usage none;
  EXPECT_FALSE(FindUsage(R"({"choices":[],"usage":null})", &none));
  EXPECT_FALSE(FindUsage("[DONE]", &none));
}

}  // namespace
}  // namespace gimbal::router
