// What the router reads from an OpenAI completion request body, and from responses' `usage`.
//
// The router never tokenizes: it estimates a prompt's tokens from its characters (a configured
// ratio, optionally learned from the prompt_tokens that engines report in `usage`). Prompts given
// as token ids are counted exactly.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gimbal::router {

struct CompletionRequest {
  std::string model;  // "" when absent
  bool stream = false;
  int64_t prompt_chars = 0;       // characters of text prompts / message contents
  int64_t prompt_token_ids = 0;   // tokens of prompts given as ids
  int64_t max_output_tokens = 0;  // max_tokens / max_completion_tokens; 0 when absent
  int64_t priority = 0;           // the client's own `priority`, 0 when absent
  uint64_t affinity_key = 0;      // FNV-1a of a string `user` (never 0), 0 when absent
};

// Parses a /v1/completions (`chat` false) or /v1/chat/completions body. kInvalidArgument with a
// message naming the problem when it is not a JSON object or a field has the wrong type.
Result<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat);

// Prompt characters per token, learned from responses when `adapt` is set. Thread-safe.
class TokenRatio {
 public:
  TokenRatio(double initial, bool adapt) : ratio_(initial), adapt_(adapt) {}
  double get() const { return ratio_.load(std::memory_order_relaxed); }
  // False when Observe(chars, ...) would ignore every report (not adapting, or a tiny prompt):
  // the caller can skip reading `usage` from the answer.
  bool Wants(int64_t chars) const { return adapt_ && chars >= kMinObservedChars; }
  // Estimated tokens of a request (>= 1).
  int64_t Estimate(const CompletionRequest& r) const;
  // A response reported `prompt_tokens` for `chars` prompt characters: move the ratio 10% of the
  // way toward chars/tokens (ignored for tiny prompts or when not adapting).
  void Observe(int64_t chars, int64_t prompt_tokens);

 private:
  static constexpr int64_t kMinObservedChars = 64;
  std::atomic<double> ratio_;
  bool adapt_;
};

struct Usage {
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
};

// Reads `usage` from a response object or one streamed chunk's JSON; false when absent or null.
// Cheap when the text does not mention "usage".
bool FindUsage(std::string_view json_text, Usage* out);

}  // namespace gimbal::router
