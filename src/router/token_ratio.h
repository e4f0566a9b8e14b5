// The router's estimate of a request's prompt tokens. The router never tokenizes: it estimates a
// prompt's tokens from its characters (a configured ratio, optionally learned from the
// prompt_tokens that engines report in `usage`). Prompts given as token ids are counted exactly.
// The request and `usage` formats are the wire module's (wire/completion_request.h, wire/usage.h).
#pragma once

#include <atomic>
#include <cstdint>

#include "wire/completion_request.h"

namespace gimbal::router {

// Prompt characters per token, learned from responses when `adapt` is set. Thread-safe.
class TokenRatio {
 public:
  TokenRatio(double initial, bool adapt) : ratio_(initial), adapt_(adapt) {}
  double get() const { return ratio_.load(std::memory_order_relaxed); }
  // False when Observe(chars, ...) would ignore every report (not adapting, or a tiny prompt):
  // the caller can skip reading `usage` from the answer.
  bool Wants(int64_t chars) const { return adapt_ && chars >= kMinObservedChars; }
  // Estimated tokens of a request (>= 1): its token ids plus its prompt_chars over the ratio.
  int64_t Estimate(const wire::CompletionRequest& r) const;
  // A response reported `prompt_tokens` for `chars` prompt characters: move the ratio 10% of the
  // way toward chars/tokens (ignored for tiny prompts or when not adapting).
  void Observe(int64_t chars, int64_t prompt_tokens);

 private:
  static constexpr int64_t kMinObservedChars = 64;
  std::atomic<double> ratio_;
  bool adapt_;
};

}  // namespace gimbal::router
