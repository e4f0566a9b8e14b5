// vllm and vllm_kv: vLLM v1's data-parallel load balancer in the API server.
//
// Source: vLLM v1 engine core client for data parallelism (the DP load-balancing client), as
// documented in vLLM's data-parallel deployment guide and its code comments: each engine's score
// is 4·waiting + running from the per-engine request counts that the DP coordinator publishes
// about every 100 ms; the lowest score wins, scanning from engine 0 so ties go to the lowest
// index; after each pick the front end adds one to the chosen engine's local waiting count, so
// a burst between two publications spreads. Here the caller refreshes the snapshot and counts
// the picks since it (EngineView::picks_since_snapshot), which enter as waiting requests.
//
// vllm_kv is the newer KV-aware variant: max(inflight, waiting + running) +
// 6·waiting·max(0, kv_usage − 0.5), with the same local increment and tie rule.
#include <algorithm>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct VllmOptions {
  double waiting_weight = 4;  // vllm: the 4 in 4·waiting + running
  double kv_weight = 6;       // vllm_kv: the 6 in 6·waiting·max(0, kv − kv_threshold)
  double kv_threshold = 0.5;  // vllm_kv
};

class VllmPolicy final : public DispatchPolicy {
 public:
  VllmPolicy(bool kv_variant, VllmOptions opts) : kv_variant_(kv_variant), opts_(opts) {}

  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    std::vector<double> scores(engines.size(), 0.0);
    for (int i : healthy) scores[static_cast<size_t>(i)] = Score(engines[static_cast<size_t>(i)]);
    return PickMinLowestIndex(healthy, scores);
  }

  std::string name() const override { return kv_variant_ ? "vllm_kv" : "vllm"; }

 private:
  double Score(const EngineView& v) const {
    const double waiting =
        static_cast<double>(v.snapshot.waiting) + static_cast<double>(v.picks_since_snapshot);
    const double running = static_cast<double>(v.snapshot.running);
    if (!kv_variant_) return opts_.waiting_weight * waiting + running;
    const double load = std::max(static_cast<double>(v.inflight), waiting + running);
    return load +
           opts_.kv_weight * waiting * std::max(0.0, v.snapshot.kv_usage - opts_.kv_threshold);
  }

  bool kv_variant_;
  VllmOptions opts_;
};

FactoryResult NewVllmVariant(bool kv_variant, const Params& p) {
  VllmOptions o;
  if (kv_variant) {
    o.kv_weight = p.GetDouble("kv_weight", o.kv_weight);
    o.kv_threshold = p.GetDouble("kv_threshold", o.kv_threshold);
    if (o.kv_weight < 0) return ParamRangeError("kv_weight", ">= 0", o.kv_weight);
  } else {
    o.waiting_weight = p.GetDouble("waiting_weight", o.waiting_weight);
    if (o.waiting_weight < 0) return ParamRangeError("waiting_weight", ">= 0", o.waiting_weight);
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<VllmPolicy>(kv_variant, o));
}

}  // namespace

FactoryResult NewVllm(const Params& p, const DispatchDeps& /*deps*/) {
  return NewVllmVariant(false, p);
}
FactoryResult NewVllmKv(const Params& p, const DispatchDeps& /*deps*/) {
  return NewVllmVariant(true, p);
}

}  // namespace gimbal::dispatch_internal
