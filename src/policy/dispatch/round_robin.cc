// round_robin: the healthy engines in turn.
//
// Behaviour as documented for round-robin load balancing in Envoy and nginx: the n-th dispatch
// goes to the (n mod h)-th healthy engine, h the number of healthy engines. The cursor is the
// front end's dispatch count (DispatchRequest::sequence), so the policy itself keeps no state.
#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

class RoundRobinPolicy final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    return healthy[req.sequence % healthy.size()];
  }
  std::string name() const override { return "round_robin"; }
};

}  // namespace

FactoryResult NewRoundRobin(const Params& /*p*/, const DispatchDeps& /*deps*/) {
  return std::unique_ptr<DispatchPolicy>(std::make_unique<RoundRobinPolicy>());
}

}  // namespace gimbal::dispatch_internal
