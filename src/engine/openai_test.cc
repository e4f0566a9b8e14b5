#include "engine/openai.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace gimbal::engine {
namespace {

using nlohmann::json;

TEST(OpenAiTest, PromptStringCountsCharsOverFour) {
  auto r = ParseCompletionRequest(R"({"model":"m","prompt":"abcdefghij","max_tokens":3})", false, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prompt_tokens, 3);  // ceil(10 / 4)
  EXPECT_EQ(r->max_tokens, 3);
  EXPECT_EQ(r->model, "m");
  EXPECT_FALSE(r->stream);
}

TEST(OpenAiTest, TokenIdPromptsAndSingletonLists) {
  auto r = ParseCompletionRequest(R"({"prompt":[1,2,3,4,5],"stream":true})", false, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompt_tokens, 5);
  EXPECT_EQ(r->max_tokens, 16);  // default
  EXPECT_TRUE(r->stream);
  auto one = ParseCompletionRequest(R"({"prompt":[[7,8]]})", false, {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prompt_tokens, 2);
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":["a","b"]})", false, {}).ok());
}

TEST(OpenAiTest, ChatCountsMessageContent) {
  auto r = ParseCompletionRequest(
      R"({"messages":[{"role":"system","content":"12345678"},
                     {"role":"user","content":[{"type":"text","text":"abcd"}]}],
          "max_completion_tokens":9,"stream":true,"stream_options":{"include_usage":true}})",
      true, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prompt_tokens, 3);
  EXPECT_EQ(r->max_tokens, 9);
  EXPECT_TRUE(r->include_usage);
}

TEST(OpenAiTest, RejectsMalformedBodies) {
  EXPECT_FALSE(ParseCompletionRequest("{not json", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest("[1]", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"max_tokens":3})", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","max_tokens":0})", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","max_tokens":"5"})", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","stream":"yes"})", false, {}).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x"})", true, {}).ok());  // chat needs messages
}

TEST(OpenAiTest, ResponsesCarryUsageAndChunksFinishOnLength) {
  auto r = ParseCompletionRequest(R"({"prompt":"abcdefgh","max_tokens":2})", false, {});
  ASSERT_TRUE(r.ok());
  ResponseIds ids{"cmpl-1", 1, "m"};
  json whole = json::parse(CompletionResponseJson(*r, ids, 2));
  EXPECT_EQ(whole["usage"]["prompt_tokens"], 2);
  EXPECT_EQ(whole["usage"]["completion_tokens"], 2);
  EXPECT_EQ(whole["usage"]["total_tokens"], 4);
  EXPECT_EQ(whole["choices"][0]["text"], FillerToken(0) + FillerToken(1));
  json c0 = json::parse(StreamChunkJson(*r, ids, 0, false));
  json c1 = json::parse(StreamChunkJson(*r, ids, 1, true));
  EXPECT_TRUE(c0["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(c1["choices"][0]["finish_reason"], "length");
  json u = json::parse(StreamUsageJson(*r, ids, 2));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 4);
  json e = json::parse(ErrorJson(404, "nope"));
  EXPECT_EQ(e["error"]["code"], 404);
}

}  // namespace
}  // namespace gimbal::engine
