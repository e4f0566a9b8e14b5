// power_of_two: the power of two random choices.
//
// Source: Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (2001), as used
// by Envoy's least-request balancer (choice_count 2): draw two distinct healthy engines uniformly
// at random and send the request to the one with fewer requests in flight (the front end's own
// count); on a tie, the first drawn (itself uniformly random).
#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

class PowerOfTwoPolicy final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    if (healthy.size() == 1) return healthy[0];
    const uint64_t h = healthy.size();
    const uint64_t a = rng.UniformInt(h);
    uint64_t b = rng.UniformInt(h - 1);
    if (b >= a) ++b;  // distinct from a, uniform over the rest
    const int ea = healthy[a];
    const int eb = healthy[b];
    return engines[static_cast<size_t>(eb)].inflight < engines[static_cast<size_t>(ea)].inflight
               ? eb
               : ea;
  }
  std::string name() const override { return "power_of_two"; }
};

}  // namespace

FactoryResult NewPowerOfTwo(const Params& /*p*/, const DispatchDeps& /*deps*/) {
  return std::unique_ptr<DispatchPolicy>(std::make_unique<PowerOfTwoPolicy>());
}

}  // namespace gimbal::dispatch_internal
