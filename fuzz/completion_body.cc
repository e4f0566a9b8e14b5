// Fuzz target: an OpenAI request body as the router reads it (router::ParseCompletionRequest,
// for /v1/completions and /v1/chat/completions) and a response's `usage` (router::FindUsage).
// Invariants: never crashes, however deep the nesting; counts read are >= 0; a body accepted is
// one JSON object to nlohmann::json too; FindUsage leaves its output untouched when it finds none.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "router/request_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gimbal::router::CompletionRequest;
  const std::string_view body = gimbal::fuzz::AsText(data, size);

  for (bool chat : {false, true}) {
    auto r = gimbal::router::ParseCompletionRequest(body, chat);
    if (!r.ok()) {
      FUZZ_CHECK(!r.status().message().empty(), "a refusal without a message");
      continue;
    }
    const CompletionRequest& c = *r;
    FUZZ_CHECK(c.prompt_chars >= 0, std::to_string(c.prompt_chars));
    FUZZ_CHECK(c.prompt_token_ids >= 0, std::to_string(c.prompt_token_ids));
    FUZZ_CHECK(c.max_output_tokens >= 0, std::to_string(c.max_output_tokens));
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

  gimbal::router::Usage u;
  u.prompt_tokens = -7;
  u.completion_tokens = -9;
  if (!gimbal::router::FindUsage(body, &u)) {
    FUZZ_CHECK(u.prompt_tokens == -7 && u.completion_tokens == -9, "FindUsage failed but wrote");
  }
  return 0;
}
