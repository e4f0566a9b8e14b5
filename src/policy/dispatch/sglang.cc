// sglang: SGLang router's cache-aware policy (sgl-router, now the SGLang model gateway "smg").
//
// Sources (facts only): sgl-project/sglang sgl-router/src/policies/cache_aware.rs (commit
// 026f853b) and sgl-router/src/policies/tree.rs; the router's CacheAware defaults as its
// launcher sets and logs them (sglang-router 0.2, smg): cache_threshold 0.3,
// balance_abs_threshold 64, balance_rel_threshold 1.5, eviction_interval_secs 120,
// max_tree_size 2^26 (67,108,864).
//
// Per request the router
//  1. reads each worker's load (its own count of requests in flight there) and calls the system
//     imbalanced when max − min > balance_abs_threshold AND max > balance_rel_threshold · min;
//     then the request goes to the least-loaded worker (minimum-by-key scan: the first on ties);
//  2. otherwise finds, in one radix tree of the raw text it routed to each worker (characters,
//     not tokens), the worker with the longest prefix match; match_rate = matched characters /
//     request characters. If match_rate > cache_threshold the request goes to that worker, else
//     to the worker with the smallest tree (fewest characters held: "most available cache");
//  3. inserts the request text into the chosen worker's tree (in both cases). A background thread
//     evicts least-recently-used leaves of each worker's tree down to max_tree_size characters
//     every eviction_interval_secs.
//
// Mapping to EngineView: the tree is the front end's approximate index (a stack sets
// `prefix_index: approximate`; its capacity stands for max_tree_size). match_rate = the best
// cached_prompt_tokens / prompt_tokens (a token fraction for a character fraction: equal when
// characters per token are uniform over the prompt); the longest-match worker is the engine with
// the most cached prompt tokens, ties at random (the tree returns one of the tenants sharing the
// matched node). The tree sizes are not in EngineView; the "smallest tree" stand-in is the engine
// with the least KV in use (EffectiveKvUsage: the larger of its report and this front end's
// reservations), ties at random, which is what SGLang's choice approximates.
// load_signal: "inflight" (default, as SGLang's router) or "snapshot" (running + waiting).
#include <algorithm>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct SglangOptions {
  double cache_threshold = 0.3;
  double balance_abs_threshold = 64;
  double balance_rel_threshold = 1.5;
  bool snapshot_load = false;
};

class SglangPolicy final : public DispatchPolicy {
 public:
  explicit SglangPolicy(SglangOptions opts) : opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    std::vector<double> load(engines.size(), 0.0);
    double lo = 0;
    double hi = 0;
    bool first = true;
    for (int i : healthy) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      const double l = opts_.snapshot_load
                           ? static_cast<double>(v.snapshot.running + v.snapshot.waiting)
                           : static_cast<double>(v.inflight);
      load[static_cast<size_t>(i)] = l;
      lo = first ? l : std::min(lo, l);
      hi = first ? l : std::max(hi, l);
      first = false;
    }
    const bool imbalanced =
        hi - lo > opts_.balance_abs_threshold && hi > opts_.balance_rel_threshold * lo;
    if (imbalanced) return PickMinLowestIndex(healthy, load);

    // Balanced: the longest prefix match if good enough, else the "smallest tree".
    std::vector<double> neg_cached(engines.size(), 0.0);
    int64_t best = 0;
    for (int i : healthy) {
      const int64_t c = CachedPromptTokens(req, engines[static_cast<size_t>(i)]);
      neg_cached[static_cast<size_t>(i)] = -static_cast<double>(c);
      best = std::max(best, c);
    }
    const double match_rate =
        req.prompt_tokens > 0 ? static_cast<double>(best) / static_cast<double>(req.prompt_tokens)
                              : 0.0;
    if (match_rate > opts_.cache_threshold) return PickMinRandomTie(healthy, neg_cached, 0.5, rng);
    std::vector<double> usage(engines.size(), 0.0);
    for (int i : healthy) {
      usage[static_cast<size_t>(i)] = EffectiveKvUsage(engines[static_cast<size_t>(i)]);
    }
    return PickMinRandomTie(healthy, usage, 1e-12, rng);
  }
  std::string name() const override { return "sglang"; }

 private:
  SglangOptions opts_;
};

}  // namespace

FactoryResult NewSglang(const Params& p, const DispatchDeps& /*deps*/) {
  SglangOptions o;
  o.cache_threshold = p.GetDouble("cache_threshold", o.cache_threshold);
  o.balance_abs_threshold = p.GetDouble("balance_abs_threshold", o.balance_abs_threshold);
  o.balance_rel_threshold = p.GetDouble("balance_rel_threshold", o.balance_rel_threshold);
  const std::string signal = p.GetString("load_signal", "inflight");
  if (signal != "inflight" && signal != "snapshot") {
    return InvalidArgument("'load_signal' must be 'inflight' or 'snapshot', got '" + signal + "'");
  }
  o.snapshot_load = signal == "snapshot";
  if (o.cache_threshold < 0 || o.cache_threshold > 1) {
    return ParamRangeError("cache_threshold", "in [0, 1]", o.cache_threshold);
  }
  if (o.balance_abs_threshold < 0) {
    return ParamRangeError("balance_abs_threshold", ">= 0", o.balance_abs_threshold);
  }
  if (o.balance_rel_threshold < 1) {
    return ParamRangeError("balance_rel_threshold", ">= 1", o.balance_rel_threshold);
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<SglangPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
