// llmd: llm-d inference scheduler's weighted scorers (queue and KV-cache utilisation).
//
// Source: llm-d inference scheduler / Gateway API inference extension documentation of its
// scorer plugins. Each scorer gives every candidate a score in [0, 1], higher is better; the
// scheduler sums weight·score and picks the maximum, breaking ties at random.
//   queue scorer:     (max_q − q_e) / (max_q − min_q), 1 for all when every queue is equal, with
//                     q_e the engine's reported waiting queue (llm-d reads scraped metrics only;
//                     it keeps no local count of its own picks).
//   KV-cache scorer:  (max_kv − kv_e) / (max_kv − min_kv), 1 for all when equal (kv_minmax=true);
//                     llm-d's own plugin scores 1 − kv_e, available with kv_minmax=false.
// Default weights 2 and 2. The prefix-cache scorer is not modelled (no prefix state here).
#include <algorithm>
#include <limits>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct LlmdOptions {
  double queue_weight = 2;
  double kv_weight = 2;
  bool kv_minmax = true;
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

  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
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
    // Maximise the weighted sum == minimise its negation.
    std::vector<double> neg(engines.size(), 0.0);
    for (int i : healthy) {
      const auto u = static_cast<size_t>(i);
      neg[u] = -(opts_.queue_weight * qs[u] + opts_.kv_weight * ks[u]);
    }
    return PickMinRandomTie(healthy, neg, 1e-12, rng);
  }
  std::string name() const override { return "llmd"; }

 private:
  LlmdOptions opts_;
};

}  // namespace

FactoryResult NewLlmd(const Params& p, const DispatchDeps& /*deps*/) {
  LlmdOptions o;
  o.queue_weight = p.GetDouble("queue_weight", o.queue_weight);
  o.kv_weight = p.GetDouble("kv_weight", o.kv_weight);
  o.kv_minmax = p.GetBool("kv_minmax", o.kv_minmax);
  if (o.queue_weight < 0) return ParamRangeError("queue_weight", ">= 0", o.queue_weight);
  if (o.kv_weight < 0) return ParamRangeError("kv_weight", ">= 0", o.kv_weight);
  return std::unique_ptr<DispatchPolicy>(std::make_unique<LlmdPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
