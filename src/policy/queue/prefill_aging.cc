// gimbal: prefill-aware ordering with aging (DESIGN §2.2).
//
//   key = arrival + beta · remaining_prefill        (seconds; smaller first)
//
// A virtual finish-time order: short prompts overtake long ones, but a request with P prompt
// tokens left can be overtaken only by requests arriving less than beta·P after it, so nothing
// starves and no output-length prediction is needed. beta is in seconds per prompt token;
// default 0.001, tuned in the simulator on the suite's training scenarios (docs/policies.md): a
// 2,000-token prompt yields 2 s to shorter ones.
#include "policy/queue/builtin_queue_policies.h"

namespace gimbal::queue_internal {
namespace {

class PrefillAgingPolicy final : public QueuePolicy {
 public:
  explicit PrefillAgingPolicy(double beta) : beta_(beta) {}
  double Key(const QueueEntry& e) const override {
    return e.arrival + beta_ * static_cast<double>(e.remaining_prefill);
  }
  std::string name() const override { return "gimbal"; }

 private:
  double beta_;
};

}  // namespace

FactoryResult NewPrefillAging(const Params& p) {
  const double beta = p.GetDouble("beta", 0.001);
  if (beta < 0) return InvalidArgument("'beta' must be >= 0 (seconds per prompt token)");
  return std::unique_ptr<QueuePolicy>(std::make_unique<PrefillAgingPolicy>(beta));
}

}  // namespace gimbal::queue_internal
