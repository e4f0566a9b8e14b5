// Fuzz target: an OpenAI request body as the router and the emulated engine read it
// (wire::ParseCompletionRequest, for /v1/completions and /v1/chat/completions) and a response's
// `usage` (wire::FindUsage).
// Invariants: never crashes, however deep the nesting; the quick pass of ParseCompletionRequest
// and nlohmann's parser alone (internal::ParseCompletionRequestSlow) give the same fields or the
// same error; counts read are >= 0 (and -1 for an absent max_tokens / max_completion_tokens); a
// body accepted is one JSON object to nlohmann::json too; FindUsage leaves its output untouched
// when it finds none.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "wire/completion_request.h"
#include "wire/usage.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gimbal::wire::CompletionRequest;
  const std::string_view body = gimbal::fuzz::AsText(data, size);

  gimbal::wire::PromptBlockOptions blocks;
  blocks.block_tokens = 2;
  blocks.chars_per_token = 1.5;
  blocks.keep_token_ids = true;
  for (bool chat : {false, true}) {
    auto r = gimbal::wire::ParseCompletionRequest(body, chat);
    for (const gimbal::wire::PromptBlockOptions& o : {gimbal::wire::PromptBlockOptions{}, blocks}) {
      auto quick = o.block_tokens == 0 ? r : gimbal::wire::ParseCompletionRequest(body, chat, o);
      auto slow = gimbal::wire::internal::ParseCompletionRequestSlow(body, chat, o);
      FUZZ_CHECK(quick.ok() == slow.ok(), "the quick pass and nlohmann disagree on accepting");
      if (!quick.ok()) {
        FUZZ_CHECK(quick.status().ToString() == slow.status().ToString(),
                   quick.status().ToString() + " vs " + slow.status().ToString());
        continue;
      }
      const CompletionRequest& a = *quick;
      const CompletionRequest& b = *slow;
      FUZZ_CHECK(a.model == b.model && a.stream == b.stream && a.include_usage == b.include_usage &&
                     a.prompt_chars == b.prompt_chars && a.prompt_token_ids == b.prompt_token_ids &&
                     a.prompts == b.prompts && a.messages == b.messages &&
                     a.prompt_hash == b.prompt_hash && a.max_tokens == b.max_tokens &&
                     a.max_completion_tokens == b.max_completion_tokens &&
                     a.max_output_tokens == b.max_output_tokens && a.priority == b.priority &&
                     a.affinity_key == b.affinity_key && a.traffic_class == b.traffic_class &&
                     a.n == b.n && a.prompt_tokens_unlike_text == b.prompt_tokens_unlike_text &&
                     a.block_hashes == b.block_hashes && a.token_ids == b.token_ids,
                 "the quick pass and nlohmann read different fields");
    }
    if (!r.ok()) {
      FUZZ_CHECK(!r.status().message().empty(), "a refusal without a message");
      continue;
    }
    const CompletionRequest& c = *r;
    FUZZ_CHECK(c.prompt_chars >= 0, std::to_string(c.prompt_chars));
    FUZZ_CHECK(c.prompt_token_ids >= 0, std::to_string(c.prompt_token_ids));
    FUZZ_CHECK(c.max_output_tokens >= 0, std::to_string(c.max_output_tokens));
    FUZZ_CHECK(c.max_tokens >= -1 && c.max_completion_tokens >= -1,
               std::to_string(c.max_tokens) + " " + std::to_string(c.max_completion_tokens));
    FUZZ_CHECK(c.prompts >= 0 && c.messages >= 0 && c.traffic_class >= -1,
               std::to_string(c.prompts) + " " + std::to_string(c.messages) + " " +
                   std::to_string(c.traffic_class));
    FUZZ_CHECK(chat ? c.prompts == 0 : c.messages == 0, "prompts and messages mixed up");
    // nlohmann's parser is iterative and ParseCompletionRequest refuses deep nesting, so this
    // neither recurses deeply nor builds anything large; the document is never dumped.
    const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    FUZZ_CHECK(!doc.is_discarded(), "accepted a body nlohmann::json refuses");
    FUZZ_CHECK(doc.is_object(), "accepted a body that is no JSON object");
    if (doc.contains("model") && doc["model"].is_string()) {
      // Duplicate keys: both readers keep the last.
      FUZZ_CHECK(doc["model"].get<std::string>() == c.model, c.model);
    }
  }

  gimbal::wire::Usage u;
  u.prompt_tokens = -7;
  u.completion_tokens = -9;
  if (!gimbal::wire::FindUsage(body, &u)) {
    FUZZ_CHECK(u.prompt_tokens == -7 && u.completion_tokens == -9, "FindUsage failed but wrote");
  }
  return 0;
}
