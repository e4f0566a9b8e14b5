// least_requests: the healthy engine with the fewest requests in flight.
//
// Source: the "least request" / "least connections" balancers of Envoy and nginx as documented
// (full scan variant): the front end's own count of dispatched, unfinished requests
// (EngineView::inflight); ties broken uniformly at random.
#include <cstdint>
#include <limits>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

class LeastRequestsPolicy final : public DispatchPolicy {
 public:
  // HealthyEngines + PickMinRandomTie over the in-flight counts, without their two vectors: the
  // same winner and the same random draw (one, only on a tie), so the simulator's runs are
  // unchanged; the live router calls this once per request.
  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
           Rng& rng) const override {
    int64_t best = std::numeric_limits<int64_t>::max();
    int first = -1;
    uint64_t ties = 0;
    for (size_t i = 0; i < engines.size(); ++i) {
      if (!engines[i].healthy) continue;
      const int64_t v = engines[i].inflight;
      if (v < best) {
        best = v;
        first = static_cast<int>(i);
        ties = 1;
      } else if (v == best) {
        ++ties;
      }
    }
    if (ties <= 1) return first;  // -1 when no engine is healthy
    uint64_t k = rng.UniformInt(ties);
    for (size_t i = 0; i < engines.size(); ++i) {
      if (!engines[i].healthy || engines[i].inflight != best) continue;
      if (k == 0) return static_cast<int>(i);
      --k;
    }
    return first;  // unreachable: k < ties
  }
  std::string name() const override { return "least_requests"; }
};

}  // namespace

FactoryResult NewLeastRequests(const Params& /*p*/, const DispatchDeps& /*deps*/) {
  return std::unique_ptr<DispatchPolicy>(std::make_unique<LeastRequestsPolicy>());
}

}  // namespace gimbal::dispatch_internal
