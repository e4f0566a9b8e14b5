#include "wire/completion_request.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gimbal::wire {
namespace {

std::string MessageOf(std::string_view body, bool chat) {
  auto r = ParseCompletionRequest(body, chat);
  return r.ok() ? std::string("ok") : r.status().message();
}

TEST(CompletionRequest, ReadsFields) {
  auto r = ParseCompletionRequest(
      R"({"model":"m","prompt":"abcdefgh","stream":true,"max_tokens":7,"priority":-2})", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "m");
  EXPECT_TRUE(r->stream);
  EXPECT_FALSE(r->include_usage);
  EXPECT_EQ(r->prompt_chars, 8);
  EXPECT_EQ(r->prompts, 1);
  EXPECT_EQ(r->max_tokens, 7);
  EXPECT_EQ(r->max_completion_tokens, -1);
  EXPECT_EQ(r->max_output_tokens, 7);
  EXPECT_EQ(r->priority, -2);
  EXPECT_EQ(r->traffic_class, -1);
  EXPECT_EQ(r->n, 1);
  auto ids = ParseCompletionRequest(R"({"prompt":[1,2,3]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_token_ids, 3);
  EXPECT_EQ(ids->prompts, 1);
  EXPECT_EQ(ids->max_output_tokens, 0);  // absent
  auto chat = ParseCompletionRequest(
      R"({"messages":[{"role":"user","content":"hello"},{"role":"user","content":[{"type":"text","text":"abc"}]}]})",
      true);
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(chat->prompt_chars, 5 + 3 + 2 * kChatMessageChars);
  EXPECT_EQ(chat->messages, 2);
  EXPECT_EQ(chat->prompts, 0);
}

TEST(CompletionRequest, ReadsStreamOptionsTrafficClassAndN) {
  auto r = ParseCompletionRequest(
      R"({"prompt":"x","stream":true,"stream_options":{"include_usage":true},)"
      R"("gimbal_traffic_class":2,"n":3})",
      false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->traffic_class, 2);
  EXPECT_EQ(r->n, 3);
  // include_usage only as a boolean; stream_options of another shape is ignored; a repeated
  // stream_options counts with its last value.
  for (const char* body :
       {R"({"prompt":"x","stream_options":{"include_usage":"yes"}})",
        R"({"prompt":"x","stream_options":[{"include_usage":true}]})",
        R"({"prompt":"x","stream_options":{"x":{"include_usage":true}}})",
        R"({"prompt":"x","stream_options":{"include_usage":true},"stream_options":{}})"}) {
    auto o = ParseCompletionRequest(body, false);
    ASSERT_TRUE(o.ok()) << body;
    EXPECT_FALSE(o->include_usage) << body;
  }
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":"x","n":"two"})", false)->n, 1);
  EXPECT_EQ(
      ParseCompletionRequest(R"({"prompt":"x","gimbal_traffic_class":null})", false)->traffic_class,
      -1);
  for (const char* bad : {R"({"prompt":"x","gimbal_traffic_class":-1})",
                          R"({"prompt":"x","gimbal_traffic_class":1.5})",
                          R"({"prompt":"x","gimbal_traffic_class":[1]})"}) {
    EXPECT_EQ(MessageOf(bad, false), "'gimbal_traffic_class' must be a non-negative integer")
        << bad;
  }
}

// Fields with which an engine's prompt tokens are not the prompt text's are flagged (the router
// then learns no characters-per-token ratio from the answer), in both readers.
TEST(CompletionRequest, FlagsFieldsThatChangeThePromptsTokens) {
  for (const char* body :
       {R"({"prompt":"x","truncate_prompt_tokens":8})", R"({"prompt":"x","suffix":"y"})",
        R"({"prompt":"x","tools":[{"type":"function"}]})", R"({"prompt":"x","functions":[]})",
        R"({"prompt":"x","chat_template":"{{x}}"})", R"({"prompt":"x","documents":[]})"}) {
    auto r = ParseCompletionRequest(body, false);
    ASSERT_TRUE(r.ok()) << body;
    EXPECT_TRUE(r->prompt_tokens_unlike_text) << body;
    auto slow = internal::ParseCompletionRequestSlow(body, false, {});
    ASSERT_TRUE(slow.ok()) << body;
    EXPECT_TRUE(slow->prompt_tokens_unlike_text) << body;
  }
  auto image = ParseCompletionRequest(
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"hi"},)"
      R"({"type":"image_url","image_url":{"url":"u"}}]}]})",
      true);
  ASSERT_TRUE(image.ok());
  EXPECT_TRUE(image->prompt_tokens_unlike_text);
  auto tool_call = ParseCompletionRequest(
      R"({"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":)"
      R"("function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool",)"
      R"("tool_call_id":"1","content":"42"}]})",
      true);
  ASSERT_TRUE(tool_call.ok()) << tool_call.status().ToString();
  EXPECT_TRUE(tool_call->prompt_tokens_unlike_text);
  for (auto [body, chat] : {std::pair{R"({"prompt":"x","max_tokens":3,"user":"u"})", false},
                            std::pair{R"({"messages":[{"role":"user","content":[{"type":"text",)"
                                      R"("text":"hi"}]}]})",
                                      true},
                            std::pair{R"({"prompt":"x","extra":{"suffix":"y"}})", false}}) {
    auto r = ParseCompletionRequest(body, chat);
    ASSERT_TRUE(r.ok()) << body;
    EXPECT_FALSE(r->prompt_tokens_unlike_text) << body;
  }
}

TEST(CompletionRequest, RejectsMalformedBodies) {
  EXPECT_FALSE(ParseCompletionRequest("{", false).ok());
  EXPECT_FALSE(ParseCompletionRequest("{not json", false).ok());
  EXPECT_FALSE(ParseCompletionRequest("[]", false).ok());
  EXPECT_FALSE(ParseCompletionRequest("[1]", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","stream":"yes"})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","max_tokens":-1})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x","max_tokens":"5"})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"model":"m"})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"max_tokens":3})", false).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"messages":"hi"})", true).ok());
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt":"x"})", true).ok());  // chat needs messages
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
  EXPECT_EQ(r->prompts, 2);  // a batch of two
  EXPECT_EQ(r->max_tokens, 5);
  EXPECT_EQ(r->max_completion_tokens, 9);
  EXPECT_EQ(r->max_output_tokens, 9);  // max_completion_tokens wins over max_tokens
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->priority, 0);
  EXPECT_EQ(r->affinity_key, 0u);
  // Token ids: flat, and a batch of id lists.
  auto ids = ParseCompletionRequest(R"({"prompt":[[1,2,3],[4,5]]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_token_ids, 5);
  EXPECT_EQ(ids->prompts, 2);
  auto one = ParseCompletionRequest(R"({"prompt":[[7,8]]})", false);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prompt_token_ids, 2);
  EXPECT_EQ(one->prompts, 1);
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":[1,"ab"]})", false)->prompts, 2);
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":[]})", false)->prompts, 0);
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
  EXPECT_EQ(chat->prompt_chars, 4 + 2 + 3 * kChatMessageChars);
  EXPECT_EQ(chat->messages, 3);
  // A repeated key: the last value counts, as in a parsed document.
  auto twice =
      ParseCompletionRequest(R"({"prompt":"abcdef","prompt":"ab","model":"a","model":"b"})", false);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->prompt_chars, 2);
  EXPECT_EQ(twice->prompts, 1);
  EXPECT_EQ(twice->model, "b");
  EXPECT_EQ(twice->prompt_hash, ParseCompletionRequest(R"({"prompt":"ab"})", false)->prompt_hash);
}

// A repeated top-level key counts with its last value even when that value is null or of a shape
// the field ignores (the earlier value used to stay).
TEST(CompletionRequest, ARepeatedKeyForgetsItsEarlierValue) {
  auto r = ParseCompletionRequest(
      R"({"prompt":"x","stream":true,"stream":null,"max_tokens":5,"max_tokens":null,)"
      R"("max_completion_tokens":6,"max_completion_tokens":null,"priority":3,"priority":null,)"
      R"("gimbal_traffic_class":2,"gimbal_traffic_class":null,"n":3,"n":"three",)"
      R"("user":"u","user":7,"stream_options":{"include_usage":true,"include_usage":"yes"}})",
      false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->max_tokens, -1);
  EXPECT_EQ(r->max_completion_tokens, -1);
  EXPECT_EQ(r->max_output_tokens, 0);
  EXPECT_EQ(r->priority, 0);
  EXPECT_EQ(r->traffic_class, -1);
  EXPECT_EQ(r->n, 1);
  EXPECT_EQ(r->affinity_key, 0u);
  EXPECT_FALSE(r->include_usage);
  auto nested = ParseCompletionRequest(
      R"({"prompt":"x","stream_options":{"include_usage":true,"include_usage":{"a":true}}})",
      false);
  ASSERT_TRUE(nested.ok());
  EXPECT_FALSE(nested->include_usage);
}

// A message's repeated `content` and a part's repeated `text` count with their last value too (both
// used to be counted and hashed).
TEST(CompletionRequest, ARepeatedContentOrTextCountsItsLastValue) {
  PromptBlockOptions o;
  o.block_tokens = 2;
  o.chars_per_token = 1;
  auto once = ParseCompletionRequest(
      R"({"messages":[{"role":"user","content":"de"},{"content":[{"text":"fg"}]}]})", true, o);
  ASSERT_TRUE(once.ok());
  const std::vector<std::string> bodies = {
      R"({"messages":[{"content":"abc","role":"user","content":"de"},)"
      R"({"content":[{"text":"fg"}]}]})",
      R"({"messages":[{"role":"user","content":[{"text":"xyz"}],"content":"de"},)"
      R"({"content":[{"text":"q","type":"text","text":"fg"}]}]})",
      R"({"messages":[{"role":"user","content":"de"},)"
      R"({"content":"abc","content":[{"text":"fg"}]}]})"};
  for (const std::string& body : bodies) {
    SCOPED_TRACE(body);
    auto twice = ParseCompletionRequest(body, true, o);
    ASSERT_TRUE(twice.ok()) << twice.status().ToString();
    EXPECT_EQ(twice->prompt_chars, 4 + 2 * kChatMessageChars);
    EXPECT_EQ(twice->messages, 2);
    EXPECT_EQ(twice->prompt_hash, once->prompt_hash);
    EXPECT_EQ(twice->block_hashes, once->block_hashes);
  }
  auto dropped = ParseCompletionRequest(R"({"messages":[{"content":"abc","content":null}]})", true);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->prompt_chars, kChatMessageChars);
}

// An integer above INT64_MAX is refused by name, never wrapped to a negative one (2^63 used to
// become priority INT64_MIN, the most urgent there is).
TEST(CompletionRequest, HugeIntegersAreRefusedNotWrapped) {
  EXPECT_EQ(MessageOf(R"({"prompt":"x","priority":9223372036854775808})", false),
            "'priority' is out of range (at most 9223372036854775807)");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","max_tokens":18446744073709551615})", false),
            "'max_tokens' is out of range (at most 9223372036854775807)");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","max_completion_tokens":9223372036854775808})", false),
            "'max_completion_tokens' is out of range (at most 9223372036854775807)");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","gimbal_traffic_class":9223372036854775808})", false),
            "'gimbal_traffic_class' is out of range (at most 9223372036854775807)");
  EXPECT_EQ(MessageOf(R"({"prompt":[18446744073709551615]})", false),
            "'prompt' must be a string, strings, or token ids");
  auto max = ParseCompletionRequest(R"({"prompt":"x","priority":9223372036854775807})", false);
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->priority, INT64_MAX);
  auto n = ParseCompletionRequest(R"({"prompt":"x","n":18446744073709551615})", false);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->n, 1);  // not an int64: ignored like any other non-integer n
  // A huge id inside an id list counts as a token but is neither hashed nor kept as an id.
  auto ids = ParseCompletionRequest(R"({"prompt":[[1,18446744073709551615]]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_token_ids, 2);
  EXPECT_EQ(ids->prompt_hash,
            ParseCompletionRequest(R"({"prompt":[[1,"x"]]})", false)->prompt_hash);
}

// The hashes are FNV-1a from kHashSeed, byte by byte: values that must not move between versions.
uint64_t ReferenceFnv(std::string_view bytes) {
  uint64_t h = kHashSeed;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

TEST(CompletionRequest, HashesAreStable) {
  auto r = ParseCompletionRequest(R"({"prompt":"abc","user":"alice"})", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->prompt_hash, ReferenceFnv("abc"));
  EXPECT_EQ(r->affinity_key, ReferenceFnv("alice"));
  auto ids = ParseCompletionRequest(R"({"prompt":[258]})", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_hash, ReferenceFnv(std::string_view("\x02\x01\0\0\0\0\0\0", 8)));
}

TEST(CompletionRequest, PromptHashFollowsThePrompt) {
  auto hash = [](std::string_view body, bool chat) {
    auto r = ParseCompletionRequest(body, chat);
    EXPECT_TRUE(r.ok()) << body;
    return r.ok() ? r->prompt_hash : 0;
  };
  // Other fields do not matter; the text and the ids do.
  EXPECT_EQ(hash(R"({"prompt":"abc","max_tokens":3})", false), hash(R"({"prompt":"abc"})", false));
  EXPECT_NE(hash(R"({"prompt":"abc"})", false), hash(R"({"prompt":"abd"})", false));
  EXPECT_EQ(hash(R"({"prompt":[7,8]})", false), hash(R"({"prompt":[[7,8]]})", false));
  EXPECT_NE(hash(R"({"prompt":[7,8]})", false), hash(R"({"prompt":[8,7]})", false));
  // Chat: the contents in order, whether strings or text parts.
  EXPECT_EQ(hash(R"({"messages":[{"content":"ab"},{"content":"cd"}]})", true),
            hash(R"({"messages":[{"content":[{"text":"ab"}]},{"content":"cd"}]})", true));
  EXPECT_NE(hash(R"({"messages":[{"content":"ab"},{"content":"cd"}]})", true),
            hash(R"({"messages":[{"content":"cd"},{"content":"ab"}]})", true));
}

std::vector<uint64_t> Blocks(const std::string& body, bool chat, int64_t block_tokens = 4) {
  PromptBlockOptions o;
  o.block_tokens = block_tokens;
  o.chars_per_token = 4;
  auto r = ParseCompletionRequest(body, chat, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->block_hashes : std::vector<uint64_t>{};
}

std::string Ids(int from, int count) {
  std::string s = "[";
  for (int i = 0; i < count; ++i) s += std::string(i ? "," : "") + std::to_string(from + i);
  return s + "]";
}

TEST(CompletionRequest, BlockHashesOnlyWhenAsked) {
  auto r = ParseCompletionRequest(std::string(R"({"prompt":)") + Ids(0, 64) + "}", false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->block_hashes.empty());
}

TEST(CompletionRequest, BlockHashesCoverFullBlocksOfIdsAndText) {
  // Block of 4 tokens: 4 ids, or 16 characters at 4 characters per token.
  EXPECT_EQ(Blocks(std::string(R"({"prompt":)") + Ids(0, 11) + "}", false).size(), 2u);
  EXPECT_EQ(Blocks(std::string(R"({"prompt":)") + Ids(0, 12) + "}", false).size(), 3u);
  EXPECT_EQ(Blocks(std::string(R"({"prompt":")") + std::string(47, 'a') + R"("})", false).size(),
            2u);
  EXPECT_EQ(Blocks(std::string(R"({"prompt":")") + std::string(48, 'a') + R"("})", false).size(),
            3u);
  EXPECT_TRUE(
      Blocks(std::string(R"({"prompt":")") + std::string(15, 'a') + R"("})", false).empty());
  // Block size 1: every id is a block.
  EXPECT_EQ(Blocks(std::string(R"({"prompt":)") + Ids(0, 5) + "}", false, 1).size(), 5u);
}

TEST(CompletionRequest, BlockHashesNameTheWholePrefix) {
  const std::string a(16, 'a'), b(16, 'b'), c(16, 'c');
  auto ab = Blocks(std::string(R"({"prompt":")") + a + b + R"("})", false);
  auto ac = Blocks(std::string(R"({"prompt":")") + a + c + R"("})", false);
  auto cb = Blocks(std::string(R"({"prompt":")") + c + b + R"("})", false);
  ASSERT_EQ(ab.size(), 2u);
  ASSERT_EQ(ac.size(), 2u);
  ASSERT_EQ(cb.size(), 2u);
  EXPECT_EQ(ab[0], ac[0]);  // the same first block
  EXPECT_NE(ab[1], ac[1]);
  EXPECT_NE(ab[0], cb[0]);
  EXPECT_NE(ab[1], cb[1]);  // the same second block after a different first: chained
  EXPECT_NE(ab[0], ab[1]);
  // Where the text is split does not matter: the prompt is one stream.
  auto parts =
      Blocks(std::string(R"({"messages":[{"role":"user","content":[{"type":"text","text":")") +
                 a.substr(0, 5) + std::string(R"("},{"type":"text","text":")") + a.substr(5) + b +
                 R"("}]}]})",
             true);
  auto whole =
      Blocks(std::string(R"({"messages":[{"role":"user","content":")") + a + b + R"("}]})", true);
  EXPECT_EQ(parts, whole);
  // Ids and text of the same bytes are different prompts.
  EXPECT_NE(Blocks(std::string(R"({"prompt":)") + Ids(0, 4) + "}", false),
            Blocks(std::string(R"({"prompt":")") + a + R"("})", false));
}

TEST(CompletionRequest, AConversationSharesItsHistoryBlocks) {
  const std::string sys =
      std::string(R"({"role":"system","content":")") + std::string(40, 's') + R"("})";
  const std::string u1 =
      std::string(R"({"role":"user","content":")") + std::string(30, 'q') + R"("})";
  const std::string a1 =
      std::string(R"({"role":"assistant","content":")") + std::string(50, 'r') + R"("})";
  const std::string u2 =
      std::string(R"({"role":"user","content":")") + std::string(20, 't') + R"("})";
  auto turn1 = Blocks(std::string(R"({"messages":[)") + sys + "," + u1 + "]}", true);
  auto turn2 =
      Blocks(std::string(R"({"messages":[)") + sys + "," + u1 + "," + a1 + "," + u2 + "]}", true);
  // 8 + 40 + 8 + 30 = 86 characters: 5 blocks of 16; the next turn has 172: 10 blocks.
  ASSERT_EQ(turn1.size(), 5u);
  ASSERT_EQ(turn2.size(), 10u);
  EXPECT_TRUE(std::equal(turn1.begin(), turn1.end(), turn2.begin()));
  // Another conversation on the same system prompt shares the system prompt's blocks only.
  const std::string other =
      std::string(R"({"role":"user","content":")") + std::string(30, 'x') + R"("})";
  auto turn1b = Blocks(std::string(R"({"messages":[)") + sys + "," + other + "]}", true);
  ASSERT_EQ(turn1b.size(), 5u);
  EXPECT_EQ(turn1b[2], turn1[2]);  // 48 characters: separator and system prompt
  EXPECT_NE(turn1b[3], turn1[3]);
}

TEST(CompletionRequest, KeepsTheTokenIdsOfOneIdPromptOnly) {
  PromptBlockOptions o;
  o.keep_token_ids = true;
  auto ids = ParseCompletionRequest(R"({"prompt":[5,6,7]})", false, o);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->token_ids, (std::vector<int64_t>{5, 6, 7}));
  auto nested = ParseCompletionRequest(R"({"prompt":[[5,6]]})", false, o);
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->token_ids, (std::vector<int64_t>{5, 6}));
  for (const char* body : {R"({"prompt":"text"})", R"({"prompt":[[1,2],[3]]})",
                           R"({"prompt":[1,"x",2]})", R"({"prompt":["a",[1,2]]})"}) {
    auto r = ParseCompletionRequest(body, false, o);
    ASSERT_TRUE(r.ok()) << body;
    EXPECT_TRUE(r->token_ids.empty()) << body;
  }
  auto off = ParseCompletionRequest(R"({"prompt":[5,6,7]})", false);
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off->token_ids.empty());
}

TEST(CompletionRequest, MaxBlocksBoundsTheHashesAndTheIdsKept) {
  PromptBlockOptions o;
  o.block_tokens = 4;
  o.keep_token_ids = true;
  o.max_blocks = 2;
  auto ids = ParseCompletionRequest(std::string(R"({"prompt":)") + Ids(0, 40) + "}", false, o);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->block_hashes.size(), 2u);
  EXPECT_EQ(ids->token_ids, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));  // the leading ones
  EXPECT_EQ(ids->prompt_token_ids, 40);  // counts are not capped
  o.max_blocks = 0;
  auto all = ParseCompletionRequest(std::string(R"({"prompt":)") + Ids(0, 40) + "}", false, o);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->block_hashes.size(), 10u);
  EXPECT_EQ(all->token_ids.size(), 40u);
  // The capped hashes are the uncapped ones' prefix.
  EXPECT_EQ(ids->block_hashes[1], all->block_hashes[1]);
  // One long string stops at the cap too.
  o.max_blocks = 2;
  auto text = ParseCompletionRequest(
      std::string(R"({"prompt":")") + std::string(16 * 50, 'a') + "\"}", false, o);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->block_hashes.size(), 2u);
  // A string among the ids still means no ids, however far past the cap it comes.
  o.max_blocks = 1;
  auto mixed = ParseCompletionRequest(R"({"prompt":[1,2,3,4,5,6,"x"]})", false, o);
  ASSERT_TRUE(mixed.ok());
  EXPECT_TRUE(mixed->token_ids.empty());
}

TEST(CompletionRequest, ARepeatedPromptKeyHashesTheLastPrompt) {
  auto twice = Blocks(
      std::string(R"({"prompt":)") + Ids(100, 8) + std::string(R"(,"prompt":)") + Ids(0, 8) + "}",
      false);
  auto once = Blocks(std::string(R"({"prompt":)") + Ids(0, 8) + "}", false);
  EXPECT_EQ(twice, once);
}

TEST(CompletionRequest, NamesTheBadField) {
  EXPECT_EQ(MessageOf("{\"prompt\":\"x\"", false), "request body is not valid JSON");
  EXPECT_EQ(MessageOf("\"text\"", false), "request body must be a JSON object");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","model":null})", false), "'model' must be a string");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","model":{"a":1}})", false), "'model' must be a string");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","stream":1})", false), "'stream' must be true or false");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","max_tokens":1.5})", false),
            "'max_tokens' must be a non-negative integer");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","max_completion_tokens":-3})", false),
            "'max_completion_tokens' must be a non-negative integer");
  EXPECT_EQ(MessageOf(R"({"prompt":"x","priority":"high"})", false),
            "'priority' must be an integer");
  EXPECT_EQ(MessageOf(R"({"prompt":{"text":"x"}})", false),
            "'prompt' must be a string, strings, or token ids");
  EXPECT_EQ(MessageOf(R"({"prompt":[true]})", false),
            "'prompt' must be a string, strings, or token ids");
  EXPECT_EQ(MessageOf(R"({"messages":[]})", false), "'prompt' is required");
  EXPECT_EQ(MessageOf(R"({"prompt":"x"})", true), "'messages' must be an array of messages");
  EXPECT_EQ(MessageOf(R"({"messages":{"role":"user"}})", true),
            "'messages' must be an array of messages");
  EXPECT_EQ(MessageOf(R"({"messages":["hi"]})", true), "each message must be an object");
  EXPECT_EQ(MessageOf(R"({"messages":[[1]]})", true), "each message must be an object");
  EXPECT_EQ(MessageOf(R"({"messages":[]})", true), "ok");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":null}]})", true), "ok");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":5}]})", true),
            "message 'content' must be a string or a list of parts");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":{"text":"x"}}]})", true),
            "message 'content' must be a string or a list of parts");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":["x"]}]})", true),
            "message content parts must be objects");
  EXPECT_EQ(MessageOf(R"({"messages":[{"content":[[]]}]})", true),
            "message content parts must be objects");
}

// Found by fuzz/priority_tag.cc: nlohmann's lexer stops at a NUL, so bytes after one were accepted
// unread (and forwarded).
TEST(CompletionRequest, ANulByteIsNotJson) {
  const std::string body("{\"prompt\": \"hi\"}\0{\"junk\"", 24);
  auto r = ParseCompletionRequest(body, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NUL"), std::string::npos);
}

TEST(CompletionRequest, DeepNestingIsRefusedAnywhere) {
  const std::string ok_deep = "{\"extra\":" + std::string(kMaxJsonDepth - 1, '[') +
                              std::string(kMaxJsonDepth - 1, ']') + ",\"prompt\":\"x\"}";
  EXPECT_EQ(MessageOf(ok_deep, false), "ok");
  const std::string deep = "{\"extra\":" + std::string(kMaxJsonDepth, '[') +
                           std::string(kMaxJsonDepth, ']') + ",\"prompt\":\"x\"}";
  EXPECT_EQ(MessageOf(deep, false), "request body nests deeper than 128 levels");
  const std::string very_deep = "{\"prompt\":" + std::string(100000, '[');
  EXPECT_EQ(MessageOf(very_deep, false), "request body nests deeper than 128 levels");
}

// The quick pass and nlohmann's parser read every body alike: each field, or the same error.
TEST(CompletionRequest, TheQuickPassReadsAsNlohmannDoes) {
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  const std::vector<std::string> bodies = {
      R"({"model":"bench","prompt":"Say hello to the world.","max_tokens":1})",
      R"( { "model" : "m" , "prompt" : [ 1 , 2 , -3 ] , "stream" : true } )",
      "{\n\t\"prompt\":\"a\",\r\n\"n\":3}",
      R"({"prompt":[[1,2],[3]],"max_completion_tokens":0,"max_tokens":null})",
      R"({"prompt":["ab","cd",7],"user":"u1","priority":-12,"gimbal_traffic_class":4})",
      R"({"prompt":"x","stream_options":{"include_usage":true},"stream":null})",
      R"({"prompt":"x","extra":{"a":[true,false,null,{"b":[]}],"c":{}},"n":"two"})",
      R"({"prompt":"x","prompt":"yy"})",
      R"({"prompt":"x","max_tokens":123456789012345678})",
      R"({"prompt":"x","max_tokens":1234567890123456789})",
      R"({"prompt":"x","max_tokens":18446744073709551615})",
      R"({"prompt":"x","max_tokens":18446744073709551616})",
      R"({"prompt":"x","priority":-9223372036854775808})",
      R"({"prompt":"x","max_tokens":1.5})",
      R"({"prompt":"x","max_tokens":1e3})",
      R"({"prompt":"x","max_tokens":-0})",
      R"({"prompt":"x","max_tokens":-1})",
      R"({"prompt":"x","max_tokens":01})",
      R"({"prompt":"x","max_tokens":-})",
      R"({"prompt":"a\"b\\c\u00e9"})",
      "{\"prompt\":\"caf\xc3\xa9\"}",
      "{\"prompt\":\"bad \xff byte\"}",
      "{\"prompt\":\"tab\there\"}",
      "{\"prompt\":\"del\x7f\"}",
      R"({"model":5,"prompt":"x"})",
      R"({"model":"m","prompt":{}})",
      R"({"prompt":"x","stream":"yes"})",
      R"({"prompt":"x"} trailing)",
      R"({"prompt":"x"},)",
      R"({"prompt":"x",})",
      R"({"prompt":"x" "n":1})",
      R"({"prompt" "x"})",
      R"({"prompt":tru})",
      R"({"prompt":"x","stream":truex})",
      R"({"prompt":"x","stream":nul})",
      R"({"prompt":"x")",
      R"({"prompt":"x)",
      R"({)",
      "",
      "   ",
      "[1,2]",
      "\"prompt\"",
      "\xef\xbb\xbf{\"prompt\":\"x\"}",
      R"({"prompt":"x"}/*c*/)",
      R"({"messages":[{"role":"user","content":"hello"},{"content":[{"type":"text","text":"abc"}]}]})",
      R"({"messages":[{"content":null},{"content":[]}],"model":"m"})",
      R"({"messages":[1]})",
      R"({"messages":[{"content":[1]}]})",
      R"({"messages":[{"content":5}]})",
      R"({"messages":{}})",
      R"({"messages":[]})",
      "{\"prompt\":" + deep + "}",
      "{\"x\":" + deep + ",\"prompt\":\"a\"}",
  };
  PromptBlockOptions blocks;
  blocks.block_tokens = 2;
  blocks.chars_per_token = 1;
  blocks.keep_token_ids = true;
  for (const auto& body : bodies) {
    for (bool chat : {false, true}) {
      for (const PromptBlockOptions& o : {PromptBlockOptions{}, blocks}) {
        SCOPED_TRACE(body + (chat ? " (chat)" : ""));
        auto quick = ParseCompletionRequest(body, chat, o);
        auto slow = internal::ParseCompletionRequestSlow(body, chat, o);
        ASSERT_EQ(quick.ok(), slow.ok()) << quick.status().ToString() << slow.status().ToString();
        if (!quick.ok()) {
          EXPECT_EQ(quick.status().ToString(), slow.status().ToString());
          continue;
        }
        const CompletionRequest& a = quick.value();
        const CompletionRequest& b = slow.value();
        EXPECT_EQ(a.model, b.model);
        EXPECT_EQ(a.stream, b.stream);
        EXPECT_EQ(a.include_usage, b.include_usage);
        EXPECT_EQ(a.prompt_chars, b.prompt_chars);
        EXPECT_EQ(a.prompt_token_ids, b.prompt_token_ids);
        EXPECT_EQ(a.prompts, b.prompts);
        EXPECT_EQ(a.messages, b.messages);
        EXPECT_EQ(a.prompt_hash, b.prompt_hash);
        EXPECT_EQ(a.max_tokens, b.max_tokens);
        EXPECT_EQ(a.max_completion_tokens, b.max_completion_tokens);
        EXPECT_EQ(a.max_output_tokens, b.max_output_tokens);
        EXPECT_EQ(a.priority, b.priority);
        EXPECT_EQ(a.affinity_key, b.affinity_key);
        EXPECT_EQ(a.traffic_class, b.traffic_class);
        EXPECT_EQ(a.n, b.n);
        EXPECT_EQ(a.prompt_tokens_unlike_text, b.prompt_tokens_unlike_text);
        EXPECT_EQ(a.block_hashes, b.block_hashes);
        EXPECT_EQ(a.token_ids, b.token_ids);
      }
    }
  }
}

}  // namespace
}  // namespace gimbal::wire
