// gimbal_predictive: minimise the predicted straggler with the step cost model (DESIGN §2.1,
// "a natural next step").
//
// For every healthy engine e the policy estimates the time of e's next step without the request
// (T0_e) and with it (T1_e), from the cost model (model/cost_model.h):
//   decodes   R = snapshot running, each at an average context of kv_usage · capacity / R tokens;
//   prefill   P = min(pf_e (+ prompt when the request joins), max(0, B − R)), one chunk from
//               context 0, pf_e = max(reserved_prefill, snapshot prefill_pending_tokens);
//   time      = attention(R decodes + P prefill) · layers + dense / shared FFN (tokens)
//             + routed experts of e's GPU per MoE layer, token-expert pairs = tokens · top_k ·
//               moe_pressure_e over ceil(experts / engines) local experts (expected active ones)
//             + LM head + CPU overhead.
// In lockstep the slowest rank sets the step, so sending r to e gives a step of
//   M_e = max(T1_e, max_{f ≠ e} T0_f),
// and r's prefill is done after S_e = ceil((pf_e + prompt) / (B − R)) such steps (at least one).
// The policy picks the engine with the smallest S_e · M_e: for a prompt that fits one step with
// no backlog that is the straggler the request would make; a prompt longer than a budget fills
// every engine's next step alike, and then the backlog decides. Near-ties (relative
// tie_tolerance) go to the smaller T1_e, remaining ties uniformly at random. The same hard KV
// filter as `gimbal` drops engines whose KV after admission (request prompt + expected output)
// would exceed kv_limit, unless every engine would.
#include <algorithm>
#include <cmath>
#include <limits>

#include "model/cost_model.h"
#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct PredictiveOptions {
  double kv_limit = 0.95;
  double tie_tolerance = 1e-3;  // relative
  int64_t expected_output_tokens = 512;
  int64_t token_budget = 8192;  // B, from DispatchDeps
};

class PredictivePolicy final : public DispatchPolicy {
 public:
  PredictivePolicy(const CostModel* cost, PredictiveOptions opts) : cost_(cost), o_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    const int n_engines = static_cast<int>(engines.size());
    const double out = static_cast<double>(
        req.max_output_tokens > 0 ? std::min(req.max_output_tokens, o_.expected_output_tokens)
                                  : o_.expected_output_tokens);
    const double req_tokens = static_cast<double>(req.prompt_tokens) + out;

    std::vector<double> t0(engines.size(), 0.0);
    std::vector<double> t1(engines.size(), 0.0);
    std::vector<int> admissible;
    // The two largest T0 over healthy engines, to form max_{f != e} T0_f in O(1).
    double top1 = 0;
    double top2 = 0;
    int top1_idx = -1;
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      const EngineView& v = engines[u];
      t0[u] = StepTime(v, 0, n_engines);
      t1[u] = StepTime(v, req.prompt_tokens, n_engines);
      if (t0[u] > top1) {
        top2 = top1;
        top1 = t0[u];
        top1_idx = i;
      } else if (t0[u] > top2) {
        top2 = t0[u];
      }
      const double cap = static_cast<double>(v.snapshot.kv_capacity_tokens);
      const double kv_after = EffectiveKvUsage(v) + (cap > 0 ? req_tokens / cap : 0.0);
      if (kv_after <= o_.kv_limit) admissible.push_back(i);
    }
    const std::vector<int>& candidates = admissible.empty() ? healthy : admissible;

    std::vector<double> m(engines.size(), 0.0);
    double best_m = std::numeric_limits<double>::infinity();
    for (int i : candidates) {
      const auto u = static_cast<size_t>(i);
      const double others = i == top1_idx ? top2 : top1;
      m[u] = PrefillSteps(engines[u], req.prompt_tokens) * std::max(t1[u], others);
      best_m = std::min(best_m, m[u]);
    }
    std::vector<int> near;
    for (int i : candidates) {
      if (m[static_cast<size_t>(i)] <= best_m * (1.0 + o_.tie_tolerance)) near.push_back(i);
    }
    if (near.empty()) near = candidates;  // NaN estimates: fall back to all candidates
    double best_t1 = std::numeric_limits<double>::infinity();
    for (int i : near) best_t1 = std::min(best_t1, t1[static_cast<size_t>(i)]);
    return PickMinRandomTie(near, t1, best_t1 * o_.tie_tolerance, rng);
  }

  std::string name() const override { return "gimbal_predictive"; }

 private:
  // Steps engine v needs to prefill its backlog plus `extra_prompt` tokens, at most B minus its
  // running sequences per step (at least one step).
  double PrefillSteps(const EngineView& v, int64_t extra_prompt) const {
    const int64_t room =
        std::max<int64_t>(1, o_.token_budget - std::max<int64_t>(0, v.snapshot.running));
    const int64_t tokens = EffectivePendingPrefill(v) + std::max<int64_t>(0, extra_prompt);
    return std::max(1.0, std::ceil(static_cast<double>(tokens) / static_cast<double>(room)));
  }

  // Estimated next-step time of engine v if `extra_prompt` more prompt tokens were pending there.
  double StepTime(const EngineView& v, int64_t extra_prompt, int n_engines) const {
    const ModelSpec& m = cost_->model();
    const int64_t decodes = std::max<int64_t>(0, v.snapshot.running);
    const auto capacity = std::max<int64_t>(0, v.snapshot.kv_capacity_tokens);
    const double kv_tokens = v.snapshot.kv_usage * static_cast<double>(capacity);
    const double ctx = decodes > 0 ? kv_tokens / static_cast<double>(decodes) : 0.0;
    const int64_t room = std::max<int64_t>(0, o_.token_budget - decodes);
    const int64_t prefill = std::min(EffectivePendingPrefill(v) + extra_prompt, room);

    RankBatch b;
    b.tokens = decodes + prefill;
    b.sequences = decodes + (prefill > 0 ? 1 : 0);
    b.logits = b.sequences;
    const double d = static_cast<double>(decodes);
    const double p = static_cast<double>(prefill);
    b.decode_attn_pairs = d * (ctx + 1.0);
    b.attn_pairs = b.decode_attn_pairs + p * (p + 1.0) / 2.0;
    b.kv_read_tokens = d * (ctx + 1.0) + p;

    const double pairs = static_cast<double>(b.tokens) * m.top_k * std::max(0.0, v.moe_pressure);
    return cost_->RankStepEstimate(b, pairs, n_engines);
  }

  const CostModel* cost_;
  PredictiveOptions o_;
};

}  // namespace

FactoryResult NewGimbalPredictive(const Params& p, const DispatchDeps& deps) {
  PredictiveOptions o;
  o.kv_limit = p.GetDouble("kv_limit", o.kv_limit);
  o.tie_tolerance = p.GetDouble("tie_tolerance", o.tie_tolerance);
  o.expected_output_tokens = p.GetInt("expected_output_tokens", o.expected_output_tokens);
  o.token_budget = deps.max_num_batched_tokens;
  if (deps.cost_model == nullptr) {
    return InvalidArgument("needs a cost model (DispatchDeps::cost_model is null)");
  }
  if (o.kv_limit <= 0) return ParamRangeError("kv_limit", "> 0", o.kv_limit);
  if (o.tie_tolerance < 0) return ParamRangeError("tie_tolerance", ">= 0", o.tie_tolerance);
  if (o.expected_output_tokens < 0) {
    return ParamRangeError("expected_output_tokens", ">= 0",
                           static_cast<double>(o.expected_output_tokens));
  }
  if (o.token_budget <= 0) {
    return InvalidArgument("DispatchDeps::max_num_batched_tokens must be > 0");
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<PredictivePolicy>(deps.cost_model, o));
}

}  // namespace gimbal::dispatch_internal
