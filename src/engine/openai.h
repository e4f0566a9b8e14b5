// The OpenAI-compatible wire format of `gimbal engine`, as vLLM speaks it: reading a completion
// request's token counts and writing responses, stream chunks and errors. No I/O here.
//
// Prompt tokens: a `prompt` string counts ceil(chars / chars_per_token) tokens (at least 1); a
// list of token ids counts its length; a list holding exactly one string or one id list counts
// that one (batched prompts are rejected). Chat `messages` count the characters of every
// message's content (a string, or the `text` of content parts) the same way. `max_tokens` (chat
// also `max_completion_tokens`) is the output length; generation always runs to it (like vLLM
// with ignore_eos), so finish_reason is "length". The output text is filler, one word per token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace gimbal::engine {

struct CompletionRequest {
  bool chat = false;
  std::string model;  // "" when absent
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  int64_t priority = 0;         // vLLM's `priority` (lower first)
  int32_t traffic_class = -1;   // `gimbal_traffic_class` when given, else -1
  uint64_t prompt_hash = 0;     // a hash of the prompt, to derive a traffic class
};

struct ParseOptions {
  double chars_per_token = 4;
  int64_t default_max_tokens = 16;
};

// InvalidArgument with a client-facing message when the body is not a JSON object or a field has
// the wrong type or range.
Result<CompletionRequest> ParseCompletionRequest(const std::string& body, bool chat,
                                                 const ParseOptions& options);

// The filler text of output token i (0-based): one short word with a leading space.
std::string FillerToken(int64_t i);

struct ResponseIds {
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

// A whole (non-streamed) response with `usage`.
std::string CompletionResponseJson(const CompletionRequest& req, const ResponseIds& ids,
                                   int64_t completion_tokens);
// The data of the stream chunk carrying output token `index` (0-based); `last` sets
// finish_reason. Chat chunks carry the assistant role in the first token's delta.
std::string StreamChunkJson(const CompletionRequest& req, const ResponseIds& ids, int64_t index,
                            bool last);
// The final chunk with empty choices and `usage` (stream_options.include_usage).
std::string StreamUsageJson(const CompletionRequest& req, const ResponseIds& ids,
                            int64_t completion_tokens);
// {"error": {"message", "type", "code"}}.
std::string ErrorJson(int status, const std::string& message);

}  // namespace gimbal::engine
