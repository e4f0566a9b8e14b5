#include "engine/openai.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace gimbal::engine {

namespace {

using json = nlohmann::json;

json Usage(const EmulatedRequest& req, int64_t completion_tokens) {
  return {{"prompt_tokens", req.prompt_tokens},
          {"total_tokens", req.prompt_tokens + completion_tokens},
          {"completion_tokens", completion_tokens}};
}

}  // namespace

Result<EmulatedRequest> ParseEmulatedRequest(std::string_view body, bool chat,
                                             const ParseOptions& options) {
  wire::PromptBlockOptions blocks;
  blocks.block_tokens = options.block_tokens;
  blocks.chars_per_token = options.chars_per_token;
  auto parsed = wire::ParseCompletionRequest(body, chat, blocks);
  if (!parsed.ok()) return parsed.status();
  EmulatedRequest r;
  r.request = std::move(*parsed);
  r.chat = chat;
  const wire::CompletionRequest& w = r.request;
  if (chat && w.messages == 0) return InvalidArgument("'messages' must be a non-empty list");
  if (!chat && w.prompts == 0) return InvalidArgument("'prompt' must not be empty");
  if (!chat && w.prompts > 1) {
    return InvalidArgument(
        "batched prompts are not supported by the emulator; send one prompt per request");
  }
  if (w.n != 1) return InvalidArgument("only n = 1 is supported by the emulator");
  if (w.max_completion_tokens >= 0 || w.max_tokens >= 0) {
    if (w.max_output_tokens < 1) {
      return InvalidArgument(w.max_completion_tokens >= 0 ? "'max_completion_tokens' must be >= 1"
                                                          : "'max_tokens' must be >= 1");
    }
    r.max_tokens = w.max_output_tokens;
  } else {
    r.max_tokens = options.default_max_tokens;
  }
  const int64_t text_chars = w.prompt_chars - wire::kChatMessageChars * w.messages;
  const auto text_tokens =
      static_cast<int64_t>(std::ceil(static_cast<double>(text_chars) / options.chars_per_token));
  r.prompt_tokens = std::max<int64_t>(w.prompt_token_ids + text_tokens, 1);
  if (options.block_tokens > 0) {
    // Chat separators count in the hashed stream but not as prompt tokens: keep whole blocks only.
    const auto whole = static_cast<size_t>(r.prompt_tokens / options.block_tokens);
    if (r.request.block_hashes.size() > whole) r.request.block_hashes.resize(whole);
  }
  r.traffic_class = static_cast<int32_t>(std::min<int64_t>(w.traffic_class, INT32_MAX));
  return r;
}

std::string FillerToken(int64_t i) {
  static constexpr std::array<const char*, 16> kWords = {
      " the",  " model", " routes", " tokens", " to",   " experts", " on",       " every",
      " rank", " and",   " all",    " ranks",  " step", " in",      " lockstep", "."};
  return kWords[static_cast<size_t>(i) % kWords.size()];
}

std::string CompletionResponseJson(const EmulatedRequest& req, const ResponseIds& ids,
                                   int64_t completion_tokens) {
  std::string text;
  for (int64_t i = 0; i < completion_tokens; ++i) text += FillerToken(i);
  json choice;
  if (req.chat) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text}}},
              {"logprobs", nullptr},
              {"finish_reason", "length"},
              {"stop_reason", nullptr}};
  } else {
    choice = {{"index", 0},
              {"text", text},
              {"logprobs", nullptr},
              {"finish_reason", "length"},
              {"stop_reason", nullptr}};
  }
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array({choice})},
            {"usage", Usage(req, completion_tokens)}};
  return j.dump();
}

std::string StreamChunkJson(const EmulatedRequest& req, const ResponseIds& ids, int64_t index,
                            bool last) {
  json choice;
  const json finish = last ? json("length") : json(nullptr);
  if (req.chat) {
    json delta = {{"content", FillerToken(index)}};
    if (index == 0) delta["role"] = "assistant";
    choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}};
  } else {
    choice = {{"index", 0},
              {"text", FillerToken(index)},
              {"logprobs", nullptr},
              {"finish_reason", finish},
              {"stop_reason", nullptr}};
  }
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array({choice})}};
  return j.dump();
}

std::string StreamUsageJson(const EmulatedRequest& req, const ResponseIds& ids,
                            int64_t completion_tokens) {
  json j = {{"id", ids.id},
            {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", ids.created},
            {"model", ids.model},
            {"choices", json::array()},
            {"usage", Usage(req, completion_tokens)}};
  return j.dump();
}

}  // namespace gimbal::engine
