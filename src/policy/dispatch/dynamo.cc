// dynamo: NVIDIA Dynamo KV router's cost function and worker selection.
//
// Sources (facts only): ai-dynamo/dynamo lib/kv-router/src/scheduling/selector/ (the
// DefaultWorkerSelector; lib/llm/src/kv_router/scheduler.rs before the crate split) and
// docs/router/kv_cache_routing.md (Dynamo 0.6-0.8): defaults kv-overlap-score-weight 1.0,
// router-temperature 0.0, KV events on (the "precise" index: a prefix tree fed by the workers'
// BlockStored/BlockRemoved events; --no-kv-events falls back to an approximate index of routing
// decisions with a 120 s TTL). The block size is the backend's (the engine's KV block size; 16
// when unknown).
// For each worker w (defaults: router_track_active_blocks on, router_track_output_blocks off,
// router_assume_kv_reuse on):
//   logit_w = overlap_score_weight · prefill_blocks_w + decode_blocks_w
//   prefill_blocks_w = (active_prefill_tokens_w + prompt_tokens − overlap_blocks_w · block_size)
//                      / block_size   (fractional; the router's count of prompt tokens routed to w
//                      and not yet prefilled, plus this request's uncached part)
//   decode_blocks_w  = the KV blocks of the sequences active on w as the router tracks them,
//                      blocks shared by several sequences counted once
// Temperature 0: the minimum logit; ties go to the worker with the smallest prefix tree, and at
// random when those are equal. Temperature T > 0: softmax sampling over the logits min-max
// normalised, p_w ∝ exp(−(logit_w − min)/((max − min)·T)), uniform when all are equal.
//
// Mapping to EngineView: overlap_blocks_w = cached_prompt_tokens / block_size, whole blocks (the
// stack's prefix index; Dynamo's default is `precise`). active_prefill_tokens_w =
// EffectivePendingPrefill (the front end's reservation of uncached prompt tokens not yet
// prefilled, or the engine's report when larger). decode_blocks_w = kv_usage · kv_capacity_tokens
// / block_size: the engine's blocks in use count shared prefix blocks once, as Dynamo's
// deduplicated count does (the front end's reservations, prompt + max_tokens per request, would
// count a shared prefix once per request); the reservation when capacity is unknown. Tree sizes
// are not in EngineView, so temperature-0 ties are broken at random.
#include <algorithm>
#include <cmath>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct DynamoOptions {
  double overlap_score_weight = 1.0;
  double router_temperature = 0.0;
  int64_t block_size = 16;
};

class DynamoPolicy final : public DispatchPolicy {
 public:
  explicit DynamoPolicy(DynamoOptions opts) : opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    const double block = static_cast<double>(opts_.block_size);
    const int64_t prompt = std::max<int64_t>(0, req.prompt_tokens);
    std::vector<double> cost(engines.size(), 0.0);
    for (int i : healthy) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      const int64_t cached = CachedPromptTokens(req, v);
      const int64_t overlap_tokens = cached / opts_.block_size * opts_.block_size;
      const double prefill_tokens =
          static_cast<double>(EffectivePendingPrefill(v) + prompt - overlap_tokens);
      const double active =
          v.snapshot.kv_capacity_tokens > 0
              ? v.snapshot.kv_usage * static_cast<double>(v.snapshot.kv_capacity_tokens)
              : static_cast<double>(v.reserved_kv_tokens);
      cost[static_cast<size_t>(i)] =
          opts_.overlap_score_weight * prefill_tokens / block + active / block;
    }
    if (opts_.router_temperature == 0.0) return PickMinRandomTie(healthy, cost, 1e-9, rng);
    return SoftmaxSample(healthy, cost, rng);
  }
  std::string name() const override { return "dynamo"; }

 private:
  int SoftmaxSample(std::span<const int> healthy, std::span<const double> cost, Rng& rng) const {
    double lo = cost[static_cast<size_t>(healthy.front())];
    double hi = lo;
    for (int i : healthy) {
      lo = std::min(lo, cost[static_cast<size_t>(i)]);
      hi = std::max(hi, cost[static_cast<size_t>(i)]);
    }
    std::vector<double> weight(healthy.size(), 1.0);
    if (hi > lo) {
      for (size_t k = 0; k < healthy.size(); ++k) {
        const double x = (cost[static_cast<size_t>(healthy[k])] - lo) / (hi - lo);
        weight[k] = std::exp(-x / opts_.router_temperature);
      }
    }
    double sum = 0;
    for (double w : weight) sum += w;
    double u = rng.Uniform() * sum;
    for (size_t k = 0; k < healthy.size(); ++k) {
      u -= weight[k];
      if (u < 0) return healthy[k];
    }
    return healthy.back();
  }

  DynamoOptions opts_;
};

}  // namespace

FactoryResult NewDynamo(const Params& p, const DispatchDeps& deps) {
  DynamoOptions o;
  if (deps.kv_block_size > 0)
    o.block_size = deps.kv_block_size;  // the worker's, as Dynamo reads it
  o.overlap_score_weight = p.GetDouble("overlap_score_weight", o.overlap_score_weight);
  o.router_temperature = p.GetDouble("router_temperature", o.router_temperature);
  o.block_size = p.GetInt("block_size", o.block_size);
  if (o.overlap_score_weight < 0) {
    return ParamRangeError("overlap_score_weight", ">= 0", o.overlap_score_weight);
  }
  if (!(o.router_temperature >= 0) || !std::isfinite(o.router_temperature)) {
    return ParamRangeError("router_temperature", ">= 0 and finite", o.router_temperature);
  }
  if (o.block_size <= 0) {
    return ParamRangeError("block_size", "> 0", static_cast<double>(o.block_size));
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<DynamoPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
