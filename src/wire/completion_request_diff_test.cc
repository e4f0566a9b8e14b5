// Differential test of the completion-request reader: ParseCompletionRequest (quick pass first) and
// internal::ParseCompletionRequestSlow (nlohmann's parser only) must give the same fields, or the
// same error, for every body. Bodies are generated from a seeded generator (deterministic) and
// then mutated (truncated, bytes inserted, deleted, replaced, slices repeated), so both readers see
// well-formed requests, near misses and garbage.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "wire/completion_request.h"

namespace gimbal::wire {
namespace {

// Bytes the mutator likes to insert: JSON's structural ones, number characters, bytes outside
// ASCII, DEL, a control byte and NUL.
constexpr std::string_view kOddBytes("{}[]\",:\\ -0e.\x80\xff\x7f\x01\0", 18);

class BodyGen {
 public:
  explicit BodyGen(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Below(100) < static_cast<size_t>(percent); }

  std::string Space() {
    static const char* const kSpaces[] = {"", "", "", " ", "\n", "\t", "\r\n "};
    if (Chance(2)) return Chance(50) ? "\f" : "\v";  // not JSON whitespace
    return kSpaces[Below(std::size(kSpaces))];
  }

  std::string Number() {
    static const char* const kNumbers[] = {"0",
                                           "-0",
                                           "1",
                                           "-1",
                                           "7",
                                           "42",
                                           "01",
                                           "-01",
                                           "00",
                                           "1.5",
                                           "-0.0",
                                           "1e3",
                                           "1E3",
                                           "1e",
                                           "1.",
                                           "-",
                                           "2.0",
                                           "123456789012345678",
                                           "-123456789012345678",
                                           "999999999999999999",
                                           "1234567890123456789",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775808",
                                           "-9223372036854775809",
                                           "18446744073709551615",
                                           "18446744073709551616",
                                           "100000000000000000000000",
                                           "+1",
                                           ".5",
                                           "0x10",
                                           "1e400",
                                           "-1e-5"};
    if (Chance(85)) return std::to_string(static_cast<int64_t>(Below(2000)) - 100);
    return kNumbers[Below(std::size(kNumbers))];
  }

  std::string StringBody() {
    static const char* const kPieces[] = {"a",
                                          "hello",
                                          " ",
                                          "prompt",
                                          "\\\"",
                                          "\\\\",
                                          "\\n",
                                          "\\u0041",
                                          "\\u00e9",
                                          "\\ud83d\\ude00",
                                          "\\ud83d",
                                          "\\x",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "\xf0\x9f\x98\x80",
                                          "\xff",
                                          "\xc3",
                                          "\xed\xa0\x80",
                                          "\t",
                                          "\x01",
                                          "\x1f",
                                          "\x7f",
                                          "~",
                                          "{",
                                          "]",
                                          ":",
                                          ","};
    std::string s;
    const size_t n = Below(6);
    for (size_t i = 0; i < n; ++i) {
      s += Chance(85) ? std::string(1, static_cast<char>('a' + Below(26)))
                      : std::string(kPieces[Below(std::size(kPieces))]);
    }
    if (Chance(2)) s += std::string(Below(5000), 'x');  // a long string
    return s;
  }

  std::string Key() {
    static const char* const kKeys[] = {"model",
                                        "stream",
                                        "stream_options",
                                        "include_usage",
                                        "prompt",
                                        "messages",
                                        "content",
                                        "text",
                                        "role",
                                        "type",
                                        "max_tokens",
                                        "max_completion_tokens",
                                        "priority",
                                        "user",
                                        "gimbal_traffic_class",
                                        "n",
                                        "other",
                                        "pr\\u006fmpt",
                                        "\\u006eodel",
                                        "model\\u0000",
                                        "prompt ",
                                        "Prompt"};
    if (Chance(85)) return kKeys[Below(std::size(kKeys))];
    return StringBody();
  }

  std::string Value(int depth) {
    const size_t kind = Below(depth > 6 ? 6 : 10);
    switch (kind) {
      case 0:
      case 1:
        return Number();
      case 2:
        return std::string("\"") + StringBody() + "\"";
      case 3:
        return Chance(50) ? "true" : (Chance(50) ? "false" : "null");
      case 4:
        return std::string("\"") + static_cast<char>('a' + Below(26)) + "\"";
      case 5:
        return Chance(50) ? "[]" : "{}";
      case 6:
      case 7: {
        std::string s = std::string("[") + Space();
        const size_t n = Below(5);
        for (size_t i = 0; i < n; ++i)
          s += std::string(i ? "," : "") + Space() + Value(depth + 1) + Space();
        return s + "]";
      }
      default:
        return Object(depth + 1);
    }
  }

  std::string Object(int depth) {
    std::string s = std::string("{") + Space();
    const size_t n = Below(depth == 0 ? 8 : 4);
    for (size_t i = 0; i < n; ++i) {
      if (i) s += std::string(",") + Space();
      s += std::string("\"") + Key() + "\"" + Space() + ":" + Space() + Value(depth) + Space();
    }
    return s + "}";
  }

  std::string Str() { return std::string("\"") + StringBody() + "\""; }
  std::string Ids() {
    std::string s = "[";
    for (size_t i = 0, n = Below(6); i < n; ++i) s += std::string(i ? "," : "") + Number();
    return s + "]";
  }
  // A value of the type a field asks for (most of the time), or any value.
  std::string Typed(const std::string& key) {
    if (Chance(15)) return Value(1);
    if (key == "model" || key == "user") return Str();
    if (key == "stream") return Chance(50) ? "true" : (Chance(50) ? "false" : "null");
    if (key == "stream_options") {
      return std::string("{\"include_usage\":") + (Chance(50) ? "true" : Value(2)) + "}";
    }
    if (key == "max_tokens" || key == "max_completion_tokens" || key == "gimbal_traffic_class" ||
        key == "priority" || key == "n") {
      return Chance(10) ? "null" : Number();
    }
    if (key == "prompt") {
      switch (Below(4)) {
        case 0:
          return Str();
        case 1:
          return Ids();
        case 2:
          return std::string("[") + Str() + "," + Str() + "]";
        default:
          return std::string("[") + Ids() + "," + Ids() + "]";
      }
    }
    if (key == "messages") {
      std::string s = "[";
      for (size_t i = 0, n = Below(4); i < n; ++i) {
        s += std::string(i ? "," : "") + "{\"role\":\"user\",\"content\":" +
             (Chance(50) ? Str() : std::string("[{\"type\":\"text\",\"text\":") + Str() + "}]") +
             "}";
      }
      return s + "]";
    }
    return Value(1);
  }

  // A request-shaped body: the fields of both kinds of request, with plausible and odd values.
  std::string Request() {
    if (Chance(20)) return Space() + Object(0) + Space();
    std::string s = "{";
    std::vector<std::string> fields;
    fields.push_back(std::string("\"prompt\":") + Typed("prompt"));
    fields.push_back(std::string("\"messages\":") + Typed("messages"));
    const size_t extra = Below(5);
    for (size_t i = 0; i < extra; ++i) {
      const std::string key = Key();
      fields.push_back(std::string("\"") + key + "\":" + Space() + Typed(key));
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      std::swap(fields[i], fields[i + Below(fields.size() - i)]);
      s += std::string(i ? "," : "") + Space() + fields[i] + Space();
    }
    return s + "}";
  }

  std::string Mutate(std::string s) {
    const size_t rounds = 1 + Below(3);
    for (size_t r = 0; r < rounds; ++r) {
      const size_t at = s.empty() ? 0 : Below(s.size() + 1);
      switch (Below(6)) {
        case 0:  // truncate
          s.resize(at);
          break;
        case 1:  // insert a byte, often a structural or odd one
          s.insert(at, 1,
                   Chance(50) ? kOddBytes[Below(kOddBytes.size())] : static_cast<char>(Below(256)));
          break;
        case 2:  // delete a byte
          if (at < s.size()) s.erase(at, 1);
          break;
        case 3:  // replace a byte
          if (at < s.size()) s[at] = static_cast<char>(Below(256));
          break;
        case 4: {  // repeat a slice (duplicate keys and values)
          const size_t len = Below(s.size() - at + 1);
          s.insert(at, s.substr(at, len));
          break;
        }
        default:  // trailing garbage
          s += Chance(50) ? std::string(" ") : std::string("x}");
          break;
      }
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

// Empty when both readers agree on `body`, else what differs.
std::string Differences(const std::string& body, bool chat, const PromptBlockOptions& o) {
  auto quick = ParseCompletionRequest(body, chat, o);
  auto slow = internal::ParseCompletionRequestSlow(body, chat, o);
  if (quick.ok() != slow.ok() ||
      (!quick.ok() && quick.status().ToString() != slow.status().ToString())) {
    return std::string("status: ") + (quick.ok() ? "ok" : quick.status().ToString()) + " vs " +
           (slow.ok() ? "ok" : slow.status().ToString());
  }
  if (!quick.ok()) return "";
  const CompletionRequest& a = quick.value();
  const CompletionRequest& b = slow.value();
  std::string d;
#define GIMBAL_DIFF(field) \
  if (a.field != b.field) d += #field " ";
  GIMBAL_DIFF(model)
  GIMBAL_DIFF(stream)
  GIMBAL_DIFF(include_usage)
  GIMBAL_DIFF(prompt_chars)
  GIMBAL_DIFF(prompt_token_ids)
  GIMBAL_DIFF(prompts)
  GIMBAL_DIFF(messages)
  GIMBAL_DIFF(prompt_hash)
  GIMBAL_DIFF(max_tokens)
  GIMBAL_DIFF(max_completion_tokens)
  GIMBAL_DIFF(max_output_tokens)
  GIMBAL_DIFF(priority)
  GIMBAL_DIFF(affinity_key)
  GIMBAL_DIFF(traffic_class)
  GIMBAL_DIFF(n)
  GIMBAL_DIFF(block_hashes)
  GIMBAL_DIFF(token_ids)
#undef GIMBAL_DIFF
  return d;
}

TEST(CompletionRequestDiff, QuickPassAgreesWithNlohmannOnRandomAndMutatedBodies) {
  BodyGen gen(0x9e3779b97f4a7c15ull);
  PromptBlockOptions blocks;
  blocks.block_tokens = 2;
  blocks.chars_per_token = 1.5;
  blocks.keep_token_ids = true;
  blocks.max_blocks = 3;
  int accepted = 0, refused = 0, failures = 0;
  constexpr int kCases = 4000;
  for (int i = 0; i < kCases && failures < 10; ++i) {
    std::string body = gen.Request();
    if (i % 2 == 1) body = gen.Mutate(std::move(body));
    for (bool chat : {false, true}) {
      for (const PromptBlockOptions& o : {PromptBlockOptions{}, blocks}) {
        const std::string d = Differences(body, chat, o);
        if (!d.empty()) {
          ++failures;
          ADD_FAILURE() << "case " << i << (chat ? " (chat)" : "") << ": " << d
                        << "\nbody: " << body;
        }
      }
      (ParseCompletionRequest(body, chat).ok() ? accepted : refused) += 1;
    }
  }
  // The generator reaches both outcomes often, so the comparison covers fields and errors alike.
  EXPECT_GT(accepted, kCases / 4);
  EXPECT_GT(refused, kCases / 4);
}

// Edge inputs, one by one (huge integers, repeated keys, escaped keys, whitespace, control bytes,
// invalid UTF-8, a 1 MiB string, nesting at the limit and past it): each read alike by both.
TEST(CompletionRequestDiff, EdgeBodiesReadAlike) {
  const std::string at_limit = std::string(127, '[') + std::string(127, ']');  // 128 levels
  const std::string past_limit = std::string(128, '[') + std::string(128, ']');
  const std::vector<std::string> bodies = {
      R"({"prompt":"x","priority":9223372036854775807})",
      R"({"prompt":"x","priority":9223372036854775808})",
      R"({"prompt":"x","priority":18446744073709551615})",
      R"({"prompt":"x","gimbal_traffic_class":9223372036854775808})",
      R"({"prompt":[9223372036854775808]})",
      R"({"prompt":[[18446744073709551615]]})",
      R"({"prompt":"x","n":18446744073709551615})",
      R"({"prompt":"x","stream":true,"stream":null})",
      R"({"prompt":"x","max_tokens":5,"max_tokens":null})",
      R"({"prompt":"x","priority":3,"priority":null})",
      R"({"prompt":"x","gimbal_traffic_class":2,"gimbal_traffic_class":null})",
      R"({"prompt":"x","n":3,"n":"three"})",
      R"({"prompt":"x","stream_options":{"include_usage":true,"include_usage":"yes"}})",
      R"({"prompt":"x","stream_options":{"include_usage":true,"include_usage":{}}})",
      R"({"prompt":"x","pr\u006fmpt":"yy"})",
      "{\"prompt\":\"x\"}\n\t\r ",
      "{\"prompt\":\"x\"}\f",
      "{\"prompt\":\"a\x00b\"}",
      "{\"prompt\":\"\x01\"}",
      "{\"prompt\":\"\xed\xa0\x80\"}",
      std::string("{\"prompt\":\"") + std::string(1 << 20, 'a') + "\"}",
      std::string("{\"x\":") + at_limit + ",\"prompt\":\"a\"}",
      std::string("{\"x\":") + past_limit + ",\"prompt\":\"a\"}",
  };
  for (const auto& body : bodies) {
    for (bool chat : {false, true}) {
      EXPECT_EQ(Differences(body, chat, {}), "") << body.substr(0, 200) << (chat ? " (chat)" : "");
    }
  }
  // The two nesting bodies sit on either side of the limit.
  EXPECT_TRUE(ParseCompletionRequest(bodies[bodies.size() - 2], false).ok());
  EXPECT_EQ(ParseCompletionRequest(bodies.back(), false).status().message(),
            "request body nests deeper than 128 levels");
}

}  // namespace
}  // namespace gimbal::wire
