// gimbal: pressure-aware DP dispatch (DESIGN §2.1).
//
//   score(e, r) = w_kv · φ(kv_e + Δkv(r)) + w_pf · (pf_e + p_r) / B
//               + w_q · (waiting_e + ρ · running_e) / N + w_moe · max(0, moe_e − 1)
//               − w_cache · c_e(r) / B
//   φ(x)        = x + min(x, 1)^k / (1 − min(x, 1) + ε)     (linear when empty, steep near full)
//
// Signals, each the fresher of the engine's report and the front end's exact accounting:
//   kv_e      = max(snapshot kv_usage, reserved_kv_tokens / capacity)   (report alone when the
//               capacity is unknown, and then Δkv = 0)
//   Δkv(r)    = (prompt + expected output) / capacity, expected output = min(max_output_tokens,
//               expected_output_tokens), or expected_output_tokens when the limit is unknown
//   pf_e      = max(reserved_prefill, snapshot prefill_pending_tokens)
//   c_e(r)    = cached_prompt_tokens of engine e: the prefix of r's prompt it holds in its cache
//               (EngineView; 0 without a prefix index)
//   p_r       = prompt - c_e(r): what e would compute of r (a cached prefix is not prefilled
//               again). w_cache values the cache beyond that: a miss recomputes the prefix and
//               evicts another's, so the session's next turn misses too (tuned, docs/policies.md)
//   waiting_e = snapshot waiting + picks_since_snapshot (requests sent after the report are
//               assumed still waiting); running_e = snapshot running
//   B         = DispatchDeps::max_num_batched_tokens; N = queue_norm
// Lowest score wins. Hard filter: engines with kv_e + Δkv(r) > kv_limit are dropped unless every
// healthy engine would be. Near-ties: uniformly random among engines within tie_epsilon of the
// best. Soft affinity (w_affinity > 0 and a request affinity key): the engine rendezvous hashing
// maps the key to gets w_affinity subtracted from its score while that score is within
// affinity_slack of the best. Class locality (w_class > 0 and a request class hint,
// DispatchRequest::class_hint >= 0): each candidate's EngineView::class_locality (the share of the
// hinted class's expert traffic its node serves under the current placement) is ranked among the
// candidates, a_e = (loc_e − min loc) / (max loc − min loc) (0 when all are equal), and
// w_class · a_e is subtracted from the scores of candidates within class_slack of the best, so
// the bonus never outweighs more than class_slack of the KV, prefill, queue and MoE terms; the KV
// hard filter applies before it. Without a hint the term is absent. Any weight may be 0, which
// removes its signal.
#include <algorithm>
#include <cmath>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct GimbalOptions {
  double w_kv = 1.0;
  double w_pf = 3.0;  // tuned with w_q on the suite's training scenarios (docs/policies.md)
  double w_q = 8.0;   // tuned on the suite's training scenarios (docs/policies.md)
  double w_moe = 1.0;
  double rho = 0.5;          // weight of a running request relative to a waiting one
  double queue_norm = 32.0;  // N
  double kv_limit = 0.95;
  double kv_exponent = 4.0;  // k in φ
  double kv_epsilon = 0.05;  // ε in φ
  double tie_epsilon = 0.01;
  double w_affinity = 0.0;
  double w_cache = 6.0;  // per token budget of the prompt the engine holds cached (tuned)
  double affinity_slack = 0.1;
  // Class locality (tuned on the coordination scenarios' training seed, docs/policies.md).
  double w_class = 0.25;
  double class_slack = 0.25;
  int64_t expected_output_tokens = 512;
  int64_t token_budget = 8192;  // B, from DispatchDeps
};

double Phi(double x, double k, double eps) {
  const double c = std::clamp(x, 0.0, 1.0);
  return x + std::pow(c, k) / (1.0 - c + eps);
}

class GimbalPolicy final : public DispatchPolicy {
 public:
  explicit GimbalPolicy(GimbalOptions opts) : o_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    const double out = static_cast<double>(
        req.max_output_tokens > 0 ? std::min(req.max_output_tokens, o_.expected_output_tokens)
                                  : o_.expected_output_tokens);
    const double req_tokens = static_cast<double>(req.prompt_tokens) + out;

    std::vector<double> kv_after(engines.size(), 0.0);
    std::vector<double> score(engines.size(), 0.0);
    std::vector<int> admissible;
    admissible.reserve(healthy.size());
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      const EngineView& v = engines[u];
      const double cap = static_cast<double>(v.snapshot.kv_capacity_tokens);
      kv_after[u] = EffectiveKvUsage(v) + (cap > 0 ? req_tokens / cap : 0.0);
      if (kv_after[u] <= o_.kv_limit) admissible.push_back(i);
    }
    const std::vector<int>& candidates = admissible.empty() ? healthy : admissible;

    double best = 0;
    for (size_t n = 0; n < candidates.size(); ++n) {
      const auto u = static_cast<size_t>(candidates[n]);
      score[u] = Score(req, engines[u], kv_after[u]);
      best = n == 0 ? score[u] : std::min(best, score[u]);
    }
    if (o_.w_affinity > 0 && req.affinity_key != 0) {
      const int target = RendezvousPick(req.affinity_key, candidates);
      const auto u = static_cast<size_t>(target);
      if (score[u] <= best + o_.affinity_slack) score[u] -= o_.w_affinity;
    }
    if (o_.w_class > 0 && req.class_hint >= 0) ApplyClassLocality(engines, candidates, best, score);
    return PickMinRandomTie(candidates, score, o_.tie_epsilon, rng);
  }

  std::string name() const override { return "gimbal"; }

 private:
  // Subtracts w_class · (locality rank in [0, 1]) from candidates within class_slack of `best`.
  void ApplyClassLocality(std::span<const EngineView> engines, const std::vector<int>& candidates,
                          double best, std::vector<double>& score) const {
    double lo = 1.0, hi = 0.0;
    for (int i : candidates) {
      const double loc = engines[static_cast<size_t>(i)].class_locality;
      lo = std::min(lo, loc);
      hi = std::max(hi, loc);
    }
    if (!(hi - lo > 1e-9)) return;
    for (int i : candidates) {
      const auto u = static_cast<size_t>(i);
      if (score[u] > best + o_.class_slack) continue;
      score[u] -= o_.w_class * (engines[u].class_locality - lo) / (hi - lo);
    }
  }

  double Score(const DispatchRequest& req, const EngineView& v, double kv_after) const {
    double s = 0;
    const int64_t cached = CachedPromptTokens(req, v);
    if (o_.w_kv != 0) s += o_.w_kv * Phi(kv_after, o_.kv_exponent, o_.kv_epsilon);
    if (o_.w_pf != 0) {
      // Only the prompt tokens this engine does not hold in its prefix cache are computed there.
      const double pf =
          static_cast<double>(EffectivePendingPrefill(v) + req.prompt_tokens - cached);
      s += o_.w_pf * pf / static_cast<double>(o_.token_budget);
    }
    if (o_.w_q != 0) {
      const double waiting =
          static_cast<double>(v.snapshot.waiting) + static_cast<double>(v.picks_since_snapshot);
      const double running = static_cast<double>(v.snapshot.running);
      s += o_.w_q * (waiting + o_.rho * running) / o_.queue_norm;
    }
    if (o_.w_moe != 0) s += o_.w_moe * std::max(0.0, v.moe_pressure - 1.0);
    if (o_.w_cache != 0) {
      s -= o_.w_cache * static_cast<double>(cached) / static_cast<double>(o_.token_budget);
    }
    return s;
  }

  GimbalOptions o_;
};

}  // namespace

FactoryResult NewGimbal(const Params& p, const DispatchDeps& deps) {
  GimbalOptions o;
  o.w_kv = p.GetDouble("w_kv", o.w_kv);
  o.w_pf = p.GetDouble("w_pf", o.w_pf);
  o.w_q = p.GetDouble("w_q", o.w_q);
  o.w_moe = p.GetDouble("w_moe", o.w_moe);
  o.rho = p.GetDouble("rho", o.rho);
  o.queue_norm = p.GetDouble("queue_norm", o.queue_norm);
  o.kv_limit = p.GetDouble("kv_limit", o.kv_limit);
  o.kv_exponent = p.GetDouble("kv_exponent", o.kv_exponent);
  o.kv_epsilon = p.GetDouble("kv_epsilon", o.kv_epsilon);
  o.tie_epsilon = p.GetDouble("tie_epsilon", o.tie_epsilon);
  o.w_affinity = p.GetDouble("w_affinity", o.w_affinity);
  o.w_cache = p.GetDouble("w_cache", o.w_cache);
  o.affinity_slack = p.GetDouble("affinity_slack", o.affinity_slack);
  o.w_class = p.GetDouble("w_class", o.w_class);
  o.class_slack = p.GetDouble("class_slack", o.class_slack);
  o.expected_output_tokens = p.GetInt("expected_output_tokens", o.expected_output_tokens);
  o.token_budget = deps.max_num_batched_tokens;
  for (auto [key, value] : {std::pair{"w_kv", o.w_kv},
                            {"w_pf", o.w_pf},
                            {"w_q", o.w_q},
                            {"w_moe", o.w_moe},
                            {"rho", o.rho},
                            {"tie_epsilon", o.tie_epsilon},
                            {"w_affinity", o.w_affinity},
                            {"w_cache", o.w_cache},
                            {"affinity_slack", o.affinity_slack},
                            {"w_class", o.w_class},
                            {"class_slack", o.class_slack}}) {
    if (value < 0) return ParamRangeError(key, ">= 0", value);
  }
  if (o.queue_norm <= 0) return ParamRangeError("queue_norm", "> 0", o.queue_norm);
  if (o.kv_limit <= 0) return ParamRangeError("kv_limit", "> 0", o.kv_limit);
  if (o.kv_exponent < 1) return ParamRangeError("kv_exponent", ">= 1", o.kv_exponent);
  if (o.kv_epsilon <= 0) return ParamRangeError("kv_epsilon", "> 0", o.kv_epsilon);
  if (o.expected_output_tokens < 0) {
    return ParamRangeError("expected_output_tokens", ">= 0",
                           static_cast<double>(o.expected_output_tokens));
  }
  if (o.token_budget <= 0) {
    return InvalidArgument("DispatchDeps::max_num_batched_tokens must be > 0");
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<GimbalPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
