// spf: shortest prefill first, without aging: key = remaining_prefill (prompt tokens).
// Minimises mean waiting time for prefill-bound queues but can starve long prompts under
// sustained load; a baseline for the aging policy ("gimbal").
#include "policy/queue/builtin_queue_policies.h"

namespace gimbal::queue_internal {
namespace {

class SpfPolicy final : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override {
    return static_cast<double>(e.remaining_prefill);
  }
  std::string name() const override { return "spf"; }
};

}  // namespace

FactoryResult NewShortestPrefillFirst(const Params& /*p*/) {
  return std::unique_ptr<QueuePolicy>(std::make_unique<SpfPolicy>());
}

}  // namespace gimbal::queue_internal
