#include "router/request_body.h"
#include "router/priority_tag.h"

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

TEST(CompletionRequest, ReadsOnlyTheFieldsItNeeds) {
  // Unknown fields of any shape are skipped; nested values do not count as top-level fields.
  auto r = ParseCompletionRequest(
      R"({"extra":{"model":7,"prompt":{"x":[1,2]}},"prompt":["ab","cde"],"logit_bias":[[1,2]],)"
      R"("model":"m","max_tokens":5,"max_completion_tokens":9,"stream":null,"priority":null})",
      false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(r->prompt_chars, 5);
  EXPECT_EQ(r->max_output_tokens, 9);  // max_completion_tokens wins over max_tokens
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->priority, 0);
  EXPECT_EQ(r->affinity_key, 0u);
  // Token ids: flat, and a batch of id lists.
  auto ids = ParseCompletionRequest(R"({"prompt":[[1,2,3],[4,5]]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_token_ids, 5);
  // `user` gives the affinity key; the same user the same key.
  auto u1 = ParseCompletionRequest(R"({"prompt":"x","user":"alice"})", false);
  auto u2 = ParseCompletionRequest(R"({"user":"alice","prompt":"y"})", false);
  auto u3 = ParseCompletionRequest(R"({"prompt":"x","user":"bob"})", false);
  ASSERT_TRUE(u1.ok() && u2.ok() && u3.ok());
  EXPECT_NE(u1->affinity_key, 0u);
  EXPECT_EQ(u1->affinity_key, u2->affinity_key);
  EXPECT_NE(u1->affinity_key, u3->affinity_key);
  // Chat: string and part contents, other message fields ignored; `prompt` is not needed.
  auto chat = ParseCompletionRequest(
      R"({"messages":[{"role":"system","content":"abcd","name":"n"},)"
      R"({"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}},)"
      R"({"type":"text","text":"xy"}]},{"role":"assistant","tool_calls":[{"id":"1"}]}]})",
      true);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_EQ(chat->prompt_chars, 4 + 2 + 3 * 8);
  // A repeated key: the last value counts, as in a parsed document.
  auto twice = ParseCompletionRequest(R"({"prompt":"abcdef","prompt":"ab","model":"a","model":"b"})", false);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->prompt_chars, 2);
  EXPECT_EQ(twice->model, "b");
}

TEST(CompletionRequest, NamesTheBadField) {
  auto message = [](std::string_view body, bool chat) {
    auto r = ParseCompletionRequest(body, chat);
    return r.ok() ? std::string("ok") : r.status().message();
  };
  EXPECT_EQ(message("{\"prompt\":\"x\"", false), "request body is not valid JSON");
  EXPECT_EQ(message("\"text\"", false), "request body must be a JSON object");
  EXPECT_EQ(message(R"({"prompt":"x","model":null})", false), "'model' must be a string");
  EXPECT_EQ(message(R"({"prompt":"x","model":{"a":1}})", false), "'model' must be a string");
  EXPECT_EQ(message(R"({"prompt":"x","stream":1})", false), "'stream' must be true or false");
  EXPECT_EQ(message(R"({"prompt":"x","max_tokens":1.5})", false),
            "'max_tokens' must be a non-negative integer");
  EXPECT_EQ(message(R"({"prompt":"x","max_completion_tokens":-3})", false),
            "'max_completion_tokens' must be a non-negative integer");
  EXPECT_EQ(message(R"({"prompt":"x","priority":"high"})", false), "'priority' must be an integer");
  EXPECT_EQ(message(R"({"prompt":{"text":"x"}})", false),
            "'prompt' must be a string, strings, or token ids");
  EXPECT_EQ(message(R"({"prompt":[true]})", false),
            "'prompt' must be a string, strings, or token ids");
  EXPECT_EQ(message(R"({"messages":[]})", false), "'prompt' is required");
  EXPECT_EQ(message(R"({"prompt":"x"})", true), "'messages' must be an array of messages");
  EXPECT_EQ(message(R"({"messages":{"role":"user"}})", true),
            "'messages' must be an array of messages");
  EXPECT_EQ(message(R"({"messages":["hi"]})", true), "each message must be an object");
  EXPECT_EQ(message(R"({"messages":[[1]]})", true), "each message must be an object");
  EXPECT_EQ(message(R"({"messages":[]})", true), "ok");
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

TEST(Usage, FoundInResponsesAndChunks) {
  Usage u;
  EXPECT_TRUE(FindUsage(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}})", &u));
  EXPECT_EQ(u.prompt_tokens, 12);
  EXPECT_EQ(u.completion_tokens, 3);
  Usage none;
  EXPECT_FALSE(FindUsage(R"({"choices":[],"usage":null})", &none));
  EXPECT_FALSE(FindUsage("[DONE]", &none));
}

// Found by fuzz/priority_tag.cc: nlohmann's lexer stops at a NUL, so bytes after one were accepted
// unread (and forwarded).
TEST(CompletionRequest, ANulByteIsNotJson) {
  const std::string body("{\"prompt\": \"hi\"}\0{\"junk\"", 24);
  auto r = ParseCompletionRequest(body, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NUL"), std::string::npos);
  Usage u;
  EXPECT_FALSE(FindUsage(std::string("{\"usage\": {\"prompt_tokens\": 3}}\0x", 33), &u));
}

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

}  // namespace
}  // namespace gimbal::router
