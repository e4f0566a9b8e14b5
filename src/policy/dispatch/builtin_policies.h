// Factories of the built-in dispatch policies and helpers they share. Internal to gimbal_dispatch:
// configs select policies by name through MakeDispatchPolicy (dispatch_policy.h).
//
// Each policy's class lives in an anonymous namespace in its own .cc; the registry
// (dispatch_policy.cc) registers every factory below explicitly, because a static library drops
// object files nobody references, so self-registration from static initialisers would silently
// lose policies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/hash.h"
#include "policy/dispatch/dispatch_policy.h"

namespace gimbal::dispatch_internal {

using FactoryResult = Result<std::unique_ptr<DispatchPolicy>>;

FactoryResult NewRoundRobin(const Params& p, const DispatchDeps& deps);
FactoryResult NewVllm(const Params& p, const DispatchDeps& deps);
FactoryResult NewVllmKv(const Params& p, const DispatchDeps& deps);
FactoryResult NewVllm2025(const Params& p, const DispatchDeps& deps);
FactoryResult NewVllmKv2025(const Params& p, const DispatchDeps& deps);
FactoryResult NewLeastRequests(const Params& p, const DispatchDeps& deps);
FactoryResult NewPowerOfTwo(const Params& p, const DispatchDeps& deps);
FactoryResult NewLlmd(const Params& p, const DispatchDeps& deps);
FactoryResult NewSglang(const Params& p, const DispatchDeps& deps);
FactoryResult NewDynamo(const Params& p, const DispatchDeps& deps);
FactoryResult NewGimbal(const Params& p, const DispatchDeps& deps);
FactoryResult NewGimbalPredictive(const Params& p, const DispatchDeps& deps);

// Indices of the healthy engines, ascending.
std::vector<int> HealthyEngines(std::span<const EngineView> engines);

// Among `candidates`, the one with the smallest score (scores indexed by engine); ties (scores
// within `eps` of the minimum) are broken uniformly at random. -1 when `candidates` is empty.
int PickMinRandomTie(std::span<const int> candidates, std::span<const double> scores, double eps,
                     Rng& rng);
// PickMinRandomTie(HealthyEngines(engines), score of each engine, 0, rng) for integer scores,
// without building either vector: the same winner and the same random draw (one, only on a
// tie). For policies called once per request on the live router's path.
template <typename Score>
int PickMinHealthyRandomTie(std::span<const EngineView> engines, Score score, Rng& rng) {
  int64_t best = 0;
  int first = -1;
  uint64_t ties = 0;
  for (size_t i = 0; i < engines.size(); ++i) {
    if (!engines[i].healthy) continue;
    const int64_t v = score(engines[i]);
    if (first < 0 || v < best) {
      best = v;
      first = static_cast<int>(i);
      ties = 1;
    } else if (v == best) {
      ++ties;
    }
  }
  if (ties <= 1) return first;  // -1 when no engine is healthy
  uint64_t k = rng.UniformInt(ties);
  for (size_t i = 0; i < engines.size(); ++i) {
    if (!engines[i].healthy || score(engines[i]) != best) continue;
    if (k == 0) return static_cast<int>(i);
    --k;
  }
  return first;  // unreachable: k < ties
}
// Among `candidates`, the one with the smallest score; ties to the lowest index. -1 when empty.
int PickMinLowestIndex(std::span<const int> candidates, std::span<const double> scores);

// Rendezvous (highest-random-weight) hashing: the candidate that `key` maps to. Removing one
// candidate moves only the keys that mapped to it. -1 when `candidates` is empty.
int RendezvousPick(uint64_t key, std::span<const int> candidates);

// The engine's KV usage in [0, ...): the larger of its report and the front end's reservations
// over capacity (the report sees other front ends' traffic and lags; the reservations are exact
// for this front end but an upper bound on output). The report alone when capacity is unknown.
double EffectiveKvUsage(const EngineView& v);
// Prompt tokens dispatched to the engine and not yet prefilled: the larger of the front end's
// reservation and the engine's report (when reported).
int64_t EffectivePendingPrefill(const EngineView& v);
// The engine's cached prefix of the request's prompt (EngineView::cached_prompt_tokens), within
// [0, prompt tokens]: what a caller's index reports, bounded by what the prompt can hold.
int64_t CachedPromptTokens(const DispatchRequest& req, const EngineView& v);

// A Status for a parameter outside its range, e.g. "'kv_limit' must be > 0, got -1".
Status ParamRangeError(const char* key, const char* requirement, double value);

}  // namespace gimbal::dispatch_internal
