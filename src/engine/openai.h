// The OpenAI-compatible surface of `gimbal engine`, as vLLM speaks it: what the emulator runs for
// a completion request, and the responses and stream chunks it writes. The request itself is read
// by the wire module (wire/completion_request.h), errors are written by wire/openai_error.h. No
// I/O here.
//
// On top of the wire reader, the emulator serves one prompt per request: a `prompt` string counts
// ceil(chars / chars_per_token) tokens (at least 1); a list of token ids counts its length; a list
// holding exactly one string or one id list counts that one (batched prompts are refused, as is
// `n` other than 1, an empty prompt and an empty message list). Chat `messages` count the
// characters of every message's content (a string, or the `text` of content parts) the same way.
// The output length is max_completion_tokens when given, else max_tokens, else the configured
// default, and must be >= 1; generation always runs to it (like vLLM with ignore_eos), so
// finish_reason is "length". The output text is filler, one word per token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "wire/completion_request.h"

namespace gimbal::engine {

// A completion request as the emulator runs it.
struct EmulatedRequest {
  wire::CompletionRequest request;  // as read from the body
  bool chat = false;
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;      // the output length
  int32_t traffic_class = -1;  // `gimbal_traffic_class` (capped to int32) when given, else -1
};

struct ParseOptions {
  double chars_per_token = 4;
  int64_t default_max_tokens = 16;
  // > 0: the engine's KV block size in tokens; request.block_hashes then holds the prompt's block
  // hashes (wire::PromptBlockOptions with chars_per_token), at most prompt_tokens / block_tokens
  // of them, so prompts that share a prefix share cached blocks.
  int64_t block_tokens = 0;
};

// kInvalidArgument with a client-facing message when the body is not one the wire reader accepts
// or not one the emulator serves (above).
Result<EmulatedRequest> ParseEmulatedRequest(std::string_view body, bool chat,
                                             const ParseOptions& options);

// The filler text of output token i (0-based): one short word with a leading space.
std::string FillerToken(int64_t i);

struct ResponseIds {
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

// A whole (non-streamed) response with `usage`.
std::string CompletionResponseJson(const EmulatedRequest& req, const ResponseIds& ids,
                                   int64_t completion_tokens);
// The data of the stream chunk carrying output token `index` (0-based); `last` sets
// finish_reason. Chat chunks carry the assistant role in the first token's delta.
std::string StreamChunkJson(const EmulatedRequest& req, const ResponseIds& ids, int64_t index,
                            bool last);
// The final chunk with empty choices and `usage` (stream_options.include_usage).
std::string StreamUsageJson(const EmulatedRequest& req, const ResponseIds& ids,
                            int64_t completion_tokens);

}  // namespace gimbal::engine
