#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {

std::vector<int> HealthyEngines(std::span<const EngineView> engines) {
  std::vector<int> out;
  out.reserve(engines.size());
  for (size_t i = 0; i < engines.size(); ++i) {
    if (engines[i].healthy) out.push_back(static_cast<int>(i));
  }
  return out;
}

int PickMinRandomTie(std::span<const int> candidates, std::span<const double> scores, double eps,
                     Rng& rng) {
  if (candidates.empty()) return -1;
  double best = std::numeric_limits<double>::infinity();
  for (int c : candidates) best = std::min(best, scores[static_cast<size_t>(c)]);
  // Collect without allocating in the common case of a single winner.
  int first = -1;
  size_t count = 0;
  for (int c : candidates) {
    if (scores[static_cast<size_t>(c)] <= best + eps) {
      if (count == 0) first = c;
      ++count;
    }
  }
  if (count == 0) return candidates.front();  // only NaN scores: still a valid engine
  if (count == 1) return first;
  uint64_t k = rng.UniformInt(count);
  for (int c : candidates) {
    if (scores[static_cast<size_t>(c)] <= best + eps) {
      if (k == 0) return c;
      --k;
    }
  }
  return first;  // unreachable
}

int PickMinLowestIndex(std::span<const int> candidates, std::span<const double> scores) {
  int best = -1;
  for (int c : candidates) {
    if (best < 0 || scores[static_cast<size_t>(c)] < scores[static_cast<size_t>(best)]) best = c;
  }
  return best;
}

int RendezvousPick(uint64_t key, std::span<const int> candidates) {
  int best = -1;
  uint64_t best_weight = 0;
  const uint64_t k = Mix64(key);
  for (int c : candidates) {
    const uint64_t w = Mix64(k ^ Mix64(static_cast<uint64_t>(c) + 0x5bd1e995ULL));
    if (best < 0 || w > best_weight) {
      best = c;
      best_weight = w;
    }
  }
  return best;
}

double EffectiveKvUsage(const EngineView& v) {
  const double reported = v.snapshot.kv_usage;
  if (v.snapshot.kv_capacity_tokens <= 0) return reported;
  const double reserved = static_cast<double>(v.reserved_kv_tokens) /
                          static_cast<double>(v.snapshot.kv_capacity_tokens);
  return std::max(reported, reserved);
}

int64_t EffectivePendingPrefill(const EngineView& v) {
  const int64_t reported = std::max<int64_t>(0, v.snapshot.prefill_pending_tokens);
  return std::max<int64_t>(v.reserved_prefill, reported);
}

int64_t CachedPromptTokens(const DispatchRequest& req, const EngineView& v) {
  return std::clamp<int64_t>(v.cached_prompt_tokens, 0, std::max<int64_t>(0, req.prompt_tokens));
}

Status ParamRangeError(const char* key, const char* requirement, double value) {
  return InvalidArgument(fmt::format("'{}' must be {}, got {}", key, requirement, value));
}

}  // namespace gimbal::dispatch_internal
