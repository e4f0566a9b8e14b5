// least_requests: the healthy engine with the fewest requests in flight.
//
// Source: the "least request" / "least connections" balancers of Envoy and nginx as documented
// (full scan variant): the front end's own count of dispatched, unfinished requests
// (EngineView::inflight); ties broken uniformly at random.
#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

class LeastRequestsPolicy final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
           Rng& rng) const override {
    return PickMinHealthyRandomTie(
        engines, [](const EngineView& e) { return e.inflight; }, rng);
  }
  std::string name() const override { return "least_requests"; }
};

}  // namespace

FactoryResult NewLeastRequests(const Params& /*p*/, const DispatchDeps& /*deps*/) {
  return std::unique_ptr<DispatchPolicy>(std::make_unique<LeastRequestsPolicy>());
}

}  // namespace gimbal::dispatch_internal
