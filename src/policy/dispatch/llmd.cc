// llmd: llm-d inference scheduler, default scheduling profile (prefix-cache, queue and
// KV-cache-utilisation scorers, max-score picker).
//
// Sources (facts only):
//  - llm-d/llm-d guides/inference-scheduling/scheduler/inference-scheduling.values.yaml (commit
//    086f217d; the guide's gaie values at commit 126f65d6 run llm-d-inference-scheduler v0.5.0
//    with the chart's default-plugins.yaml) and kubernetes-sigs/gateway-api-inference-extension
//    config/charts/inferencepool/templates/epp-config.yaml (default-plugins.yaml): the default
//    profile = queue-scorer weight 2, kv-cache-utilization-scorer weight 2, prefix-cache-scorer
//    weight 3 (the approximate scorer; no KV-event subscription).
//  - kubernetes-sigs/gateway-api-inference-extension (commit a172f54a) pkg/epp/scheduling/
//    framework/plugins/: queuescorer/queue.go, kvcacheutilizationscorer/kvcache_utilization.go,
//    prefixcachescorer/plugin.go; picker/max_score_picker.go (max weighted sum, random ties).
//  - llm-d/llm-d-inference-scheduler pkg/plugins/scorer/precise_prefix_cache.go and utils.go
//    (commit 057d2c76): the precise-prefix-cache-scorer, fed by vLLM KV events (a separate guide).
// Each scorer gives every candidate a score in [0, 1], higher is better; the picker takes the
// maximum of Σ weight·score, ties at random.
//   queue:   (max_q − q_e)/(max_q − min_q), 1 for all when equal; q = the scraped waiting queue
//            (llm-d keeps no local count of its picks).
//   KV:      1 − kv_usage_e (the scraped KV-cache usage). kv_minmax=true instead min-max
//            normalises usage, as this model did before the prefix scorer was added.
//   prefix (prefix_scorer=approximate, the default profile's): the router's own LRU index of the
//            chained block hashes it routed where (capacity autotuned to the engine's KV blocks).
//            The prompt is cut into blocks (64 characters by default; autotuned to the engine's
//            block size × 4 characters per token, i.e. one KV block), at most 256 blocks, partial
//            last block ignored; score = longest matched prefix blocks / prompt blocks.
//            Here: blocks of `block_size` tokens (the engine's KV block size, as autotuned; 16
//            when unknown), and the match is cached_prompt_tokens (from the stack's prefix
//            index) in whole blocks.
//   prefix (prefix_scorer=precise): llm-d's precise scorer counts the engine's longest cached
//            prefix in KV blocks from KV events and min-max normalises over the engines that hold
//            any: (hits − min)/(max − min), 1 for all of them when equal, 0 for engines with none.
// Pure: all state (the index) is the caller's, reaching the policy as cached_prompt_tokens.
#include <algorithm>
#include <limits>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct LlmdOptions {
  double queue_weight = 2;
  double kv_weight = 2;
  double prefix_weight = 3;
  bool kv_minmax = false;
  bool precise_prefix = false;
  int64_t block_size = 16;
  int64_t max_prefix_blocks = 256;
};

// Min-max normalised "lower is better" score in [0, 1]; 1 for every engine when all are equal.
std::vector<double> MinMaxLowerIsBetter(std::span<const int> idx, std::span<const double> x) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (int i : idx) {
    lo = std::min(lo, x[static_cast<size_t>(i)]);
    hi = std::max(hi, x[static_cast<size_t>(i)]);
  }
  std::vector<double> s(x.size(), 0.0);
  for (int i : idx) {
    s[static_cast<size_t>(i)] = hi > lo ? (hi - x[static_cast<size_t>(i)]) / (hi - lo) : 1.0;
  }
  return s;
}

class LlmdPolicy final : public DispatchPolicy {
 public:
  explicit LlmdPolicy(LlmdOptions opts) : opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    std::vector<double> queue(engines.size(), 0.0);
    std::vector<double> kv(engines.size(), 0.0);
    for (int i : healthy) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      queue[static_cast<size_t>(i)] = static_cast<double>(v.snapshot.waiting);
      kv[static_cast<size_t>(i)] = v.snapshot.kv_usage;
    }
    const std::vector<double> qs = MinMaxLowerIsBetter(healthy, queue);
    std::vector<double> ks = MinMaxLowerIsBetter(healthy, kv);
    if (!opts_.kv_minmax) {
      for (int i : healthy) ks[static_cast<size_t>(i)] = 1.0 - kv[static_cast<size_t>(i)];
    }
    const std::vector<double> ps = PrefixScores(req, engines, healthy);
    // Maximise the weighted sum == minimise its negation.
    std::vector<double> neg(engines.size(), 0.0);
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      neg[u] =
          -(opts_.queue_weight * qs[u] + opts_.kv_weight * ks[u] + opts_.prefix_weight * ps[u]);
    }
    return PickMinRandomTie(healthy, neg, 1e-12, rng);
  }
  std::string name() const override { return "llmd"; }

 private:
  // Whole blocks of the first max_prefix_blocks blocks of `tokens`.
  int64_t Blocks(int64_t tokens) const {
    return std::min(std::max<int64_t>(0, tokens) / opts_.block_size, opts_.max_prefix_blocks);
  }

  std::vector<double> PrefixScores(const DispatchRequest& req, std::span<const EngineView> engines,
                                   std::span<const int> healthy) const {
    std::vector<double> s(engines.size(), 0.0);
    const int64_t total = Blocks(req.prompt_tokens);
    if (total == 0) return s;
    std::vector<int64_t> hits(engines.size(), 0);
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      hits[u] = std::min(Blocks(engines[u].cached_prompt_tokens), total);
    }
    if (!opts_.precise_prefix) {
      for (int i : healthy) {
        const auto u = static_cast<size_t>(i);
        s[u] = static_cast<double>(hits[u]) / static_cast<double>(total);
      }
      return s;
    }
    // Precise: min-max over the engines holding at least one block.
    int64_t lo = std::numeric_limits<int64_t>::max();
    int64_t hi = 0;
    for (int i : healthy) {
      const int64_t h = hits[static_cast<size_t>(i)];
      if (h == 0) continue;
      lo = std::min(lo, h);
      hi = std::max(hi, h);
    }
    if (hi == 0) return s;
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      if (hits[u] == 0) continue;
      s[u] = hi == lo ? 1.0 : static_cast<double>(hits[u] - lo) / static_cast<double>(hi - lo);
    }
    return s;
  }

  LlmdOptions opts_;
};

}  // namespace

FactoryResult NewLlmd(const Params& p, const DispatchDeps& deps) {
  LlmdOptions o;
  if (deps.kv_block_size > 0) o.block_size = deps.kv_block_size;  // autotuned to the engine's
  o.queue_weight = p.GetDouble("queue_weight", o.queue_weight);
  o.kv_weight = p.GetDouble("kv_weight", o.kv_weight);
  o.prefix_weight = p.GetDouble("prefix_weight", o.prefix_weight);
  o.kv_minmax = p.GetBool("kv_minmax", o.kv_minmax);
  o.block_size = p.GetInt("block_size", o.block_size);
  o.max_prefix_blocks = p.GetInt("max_prefix_blocks", o.max_prefix_blocks);
  const std::string scorer = p.GetString("prefix_scorer", "approximate");
  if (scorer != "approximate" && scorer != "precise") {
    return InvalidArgument("'prefix_scorer' must be 'approximate' or 'precise', got '" + scorer +
                           "'");
  }
  o.precise_prefix = scorer == "precise";
  if (o.queue_weight < 0) return ParamRangeError("queue_weight", ">= 0", o.queue_weight);
  if (o.kv_weight < 0) return ParamRangeError("kv_weight", ">= 0", o.kv_weight);
  if (o.prefix_weight < 0) return ParamRangeError("prefix_weight", ">= 0", o.prefix_weight);
  if (o.block_size <= 0) {
    return ParamRangeError("block_size", "> 0", static_cast<double>(o.block_size));
  }
  if (o.max_prefix_blocks <= 0) {
    return ParamRangeError("max_prefix_blocks", "> 0", static_cast<double>(o.max_prefix_blocks));
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<LlmdPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
