// gimbal: prefill-aware ordering with aging (DESIGN §2.2).
//
//   key = arrival + min(beta · remaining_prefill, max_overtake)       (seconds; smaller first)
//
// A virtual finish-time order: short prompts overtake long ones, but a request can be overtaken
// only by requests arriving less than its shift after it, and no shift exceeds max_overtake. So
// every request starts no later than FCFS would start it had it arrived max_overtake later (the
// bound and its proof: docs/policies.md, "No starvation"), and no output-length prediction is
// needed. beta is in seconds per prompt token (default 0.001: a 500-token prompt yields 0.5 s to
// shorter ones); max_overtake_ms defaults to 1000 (0 = no cap, the policy before the bound).
// Both tuned on the suite's training scenarios (docs/policies.md).
#include <algorithm>

#include "policy/queue/builtin_queue_policies.h"

namespace gimbal::queue_internal {
namespace {

class PrefillAgingPolicy final : public QueuePolicy {
 public:
  PrefillAgingPolicy(double beta, double max_overtake) : beta_(beta), max_overtake_(max_overtake) {}
  double Key(const QueueEntry& e) const override {
    const double shift = beta_ * static_cast<double>(e.remaining_prefill);
    return e.arrival + (max_overtake_ > 0 ? std::min(shift, max_overtake_) : shift);
  }
  std::string name() const override { return "gimbal"; }

 private:
  double beta_;
  double max_overtake_;  // seconds; 0 = no cap
};

}  // namespace

FactoryResult NewPrefillAging(const Params& p) {
  const double beta = p.GetDouble("beta", 0.001);
  if (beta < 0) return InvalidArgument("'beta' must be >= 0 (seconds per prompt token)");
  const double max_overtake = p.GetDouble("max_overtake_ms", 1000) / 1000.0;
  if (!(max_overtake >= 0)) return InvalidArgument("'max_overtake_ms' must be >= 0 (0 = no cap)");
  return std::unique_ptr<QueuePolicy>(std::make_unique<PrefillAgingPolicy>(beta, max_overtake));
}

}  // namespace gimbal::queue_internal
