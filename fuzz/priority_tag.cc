// Fuzz target: priority tagging (wire::SetPriority) on request bodies.
// The first 8 input bytes give the priority, the rest is the body.
// Invariants: SetPriority never crashes; whenever ParseCompletionRequest accepts a body,
// SetPriority succeeds, and its output parses again (with ParseCompletionRequest and with
// nlohmann::json, iteratively: the output is never dumped) with every field unchanged but the
// priority, which is the new one; a second tag of the output changes only the priority.
#include "wire/priority_tag.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "wire/completion_request.h"

namespace {

using gimbal::wire::CompletionRequest;

std::string Describe(const CompletionRequest& c) {
  return "model=" + c.model + " stream=" + std::to_string(c.stream) +
         " chars=" + std::to_string(c.prompt_chars) + " ids=" + std::to_string(c.prompt_token_ids) +
         " prompts=" + std::to_string(c.prompts) + " messages=" + std::to_string(c.messages) +
         " hash=" + std::to_string(c.prompt_hash) + " max=" + std::to_string(c.max_tokens) + "/" +
         std::to_string(c.max_completion_tokens) + "/" + std::to_string(c.max_output_tokens) +
         " priority=" + std::to_string(c.priority) + " affinity=" + std::to_string(c.affinity_key) +
         " usage=" + std::to_string(c.include_usage) + " class=" + std::to_string(c.traffic_class) +
         " n=" + std::to_string(c.n);
}

bool SameButPriority(const CompletionRequest& a, const CompletionRequest& b) {
  return a.model == b.model && a.stream == b.stream && a.include_usage == b.include_usage &&
         a.prompt_chars == b.prompt_chars && a.prompt_token_ids == b.prompt_token_ids &&
         a.prompts == b.prompts && a.messages == b.messages && a.prompt_hash == b.prompt_hash &&
         a.max_tokens == b.max_tokens && a.max_completion_tokens == b.max_completion_tokens &&
         a.max_output_tokens == b.max_output_tokens && a.affinity_key == b.affinity_key &&
         a.traffic_class == b.traffic_class && a.n == b.n &&
         a.prompt_tokens_unlike_text == b.prompt_tokens_unlike_text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int64_t priority = 0;
  if (size >= sizeof(priority)) {
    std::memcpy(&priority, data, sizeof(priority));
    data += sizeof(priority);
    size -= sizeof(priority);
  }
  const std::string_view body = gimbal::fuzz::AsText(data, size);

  auto tagged = gimbal::wire::SetPriority(body, priority);
  for (bool chat : {false, true}) {
    auto parsed = gimbal::wire::ParseCompletionRequest(body, chat);
    if (!parsed.ok()) continue;
    FUZZ_CHECK(tagged.ok(), "SetPriority refused a body ParseCompletionRequest accepted: " +
                                tagged.status().message());
    const std::string& out = *tagged;
    auto again = gimbal::wire::ParseCompletionRequest(out, chat);
    FUZZ_CHECK(again.ok(), "the tagged body does not parse: " + again.status().message());
    FUZZ_CHECK(SameButPriority(*parsed, *again), Describe(*parsed) + " became " + Describe(*again));
    FUZZ_CHECK(again->priority == priority,
               std::to_string(again->priority) + " != " + std::to_string(priority));

    const auto doc = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    FUZZ_CHECK(!doc.is_discarded() && doc.is_object(), "the tagged body is no JSON object");
    const auto it = doc.find("priority");
    FUZZ_CHECK(it != doc.end() && it->is_number_integer(), "no integer priority");
    FUZZ_CHECK(it->get<int64_t>() == priority, std::to_string(it->get<int64_t>()));

    // Tagging the tagged body again only rewrites the priority.
    auto twice = gimbal::wire::SetPriority(out, priority);
    FUZZ_CHECK(twice.ok(), twice.status().message());
    FUZZ_CHECK(*twice == out, "tagging twice with the same priority changed the body");
  }
  return 0;
}
