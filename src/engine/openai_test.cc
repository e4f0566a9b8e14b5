// The emulator's rules over the wire reader (whose own tests, wire/completion_request_test.cc,
// check the reading field by field), and the responses it writes.
#include "engine/openai.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace gimbal::engine {
namespace {

using nlohmann::json;

std::string MessageOf(std::string_view body, bool chat) {
  auto r = ParseEmulatedRequest(body, chat, {});
  return r.ok() ? std::string("ok") : r.status().message();
}

TEST(OpenAiTest, PromptStringCountsCharsOverFour) {
  auto r = ParseEmulatedRequest(R"({"model":"m","prompt":"abcdefghij","max_tokens":3})", false, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prompt_tokens, 3);  // ceil(10 / 4)
  EXPECT_EQ(r->max_tokens, 3);
  EXPECT_EQ(r->request.model, "m");
  EXPECT_FALSE(r->request.stream);
  EXPECT_EQ(r->traffic_class, -1);
  ParseOptions two;
  two.chars_per_token = 2;
  EXPECT_EQ(ParseEmulatedRequest(R"({"prompt":"abcdefghij"})", false, two)->prompt_tokens, 5);
  EXPECT_EQ(ParseEmulatedRequest(R"({"prompt":""})", false, {})->prompt_tokens, 1);
}

TEST(OpenAiTest, TokenIdPromptsAndSingletonLists) {
  auto r = ParseEmulatedRequest(R"({"prompt":[1,2,3,4,5],"stream":true})", false, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompt_tokens, 5);
  EXPECT_EQ(r->max_tokens, 16);  // default
  EXPECT_TRUE(r->request.stream);
  auto one = ParseEmulatedRequest(R"({"prompt":[[7,8]]})", false, {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prompt_tokens, 2);
  // The same ids, listed once or as the one prompt of a list, are the same prompt.
  EXPECT_EQ(one->request.prompt_hash,
            ParseEmulatedRequest(R"({"prompt":[7,8]})", false, {})->request.prompt_hash);
  auto text = ParseEmulatedRequest(R"({"prompt":["abcdefgh"]})", false, {});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->prompt_tokens, 2);
  const std::string batched =
      "batched prompts are not supported by the emulator; send one prompt per request";
  EXPECT_EQ(MessageOf(R"({"prompt":["a","b"]})", false), batched);
  EXPECT_EQ(MessageOf(R"({"prompt":[[1],[2]]})", false), batched);
  EXPECT_EQ(MessageOf(R"({"prompt":[1,"b"]})", false), batched);
  EXPECT_EQ(MessageOf(R"({"prompt":[]})", false), "'prompt' must not be empty");
}

TEST(OpenAiTest, ChatCountsMessageContent) {
  auto r = ParseEmulatedRequest(
      R"({"messages":[{"role":"system","content":"12345678"},
                     {"role":"user","content":[{"type":"text","text":"abcd"}]}],
          "max_completion_tokens":9,"stream":true,"stream_options":{"include_usage":true}})",
      true, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->prompt_tokens, 3);  // ceil(12 / 4): the content only
  EXPECT_EQ(r->max_tokens, 9);
  EXPECT_TRUE(r->request.include_usage);
  EXPECT_EQ(MessageOf(R"({"messages":[]})", true), "'messages' must be a non-empty list");
}

TEST(OpenAiTest, OutputLengthAndExtensions) {
  // max_completion_tokens wins over max_tokens (as vLLM's chat reads them); either must be >= 1.
  EXPECT_EQ(
      ParseEmulatedRequest(R"({"prompt":"x","max_tokens":3,"max_completion_tokens":5})", false, {})
          ->max_tokens,
      5);
  EXPECT_EQ(MessageOf(R"({"prompt":"x","max_tokens":0})", false), "'max_tokens' must be >= 1");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":"x"}],"max_completion_tokens":0})", true),
            "'max_completion_tokens' must be >= 1");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","n":2})", false), "only n = 1 is supported by the emulator");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","n":1})", false), "ok");
  auto cls = ParseEmulatedRequest(R"({"prompt":"x","gimbal_traffic_class":3})", false, {});
  ASSERT_TRUE(cls.ok());
  EXPECT_EQ(cls->traffic_class, 3);
  auto big = ParseEmulatedRequest(R"({"prompt":"x","gimbal_traffic_class":9000000000})", false, {});
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->traffic_class, INT32_MAX);
}

TEST(OpenAiTest, RejectsMalformedBodies) {
  EXPECT_FALSE(ParseEmulatedRequest("{not json", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest("[1]", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest(R"({"max_tokens":3})", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest(R"({"prompt":"x","max_tokens":0})", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest(R"({"prompt":"x","max_tokens":"5"})", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest(R"({"prompt":"x","stream":"yes"})", false, {}).ok());
  EXPECT_FALSE(ParseEmulatedRequest(R"({"prompt":"x"})", true, {}).ok());  // chat needs messages
  const std::string deep = "{\"prompt\":" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_EQ(MessageOf(deep, false), "request body nests deeper than 128 levels");
}

TEST(OpenAiTest, ResponsesCarryUsageAndChunksFinishOnLength) {
  auto r = ParseEmulatedRequest(R"({"prompt":"abcdefgh","max_tokens":2})", false, {});
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
}

}  // namespace
}  // namespace gimbal::engine
