#include "router/token_ratio.h"

#include <algorithm>
#include <cmath>

namespace gimbal::router {

int64_t TokenRatio::Estimate(const wire::CompletionRequest& r) const {
  double chars = static_cast<double>(r.prompt_chars);
  int64_t t = r.prompt_token_ids + static_cast<int64_t>(std::ceil(chars / get()));
  return std::max<int64_t>(1, t);
}

void TokenRatio::Observe(int64_t chars, int64_t prompt_tokens) {
  if (!Wants(chars) || prompt_tokens <= 0) return;
  double observed =
      std::clamp(static_cast<double>(chars) / static_cast<double>(prompt_tokens), 0.5, 20.0);
  double cur = get();
  // Lost updates under contention only slow the learning down; no lock needed.
  ratio_.store(cur + 0.1 * (observed - cur), std::memory_order_relaxed);
}

}  // namespace gimbal::router
