// priority: the request's explicit priority (lower first), ties by arrival as the engine breaks
// them (vLLM's `--scheduling-policy priority`): key = priority.
#include "policy/queue/builtin_queue_policies.h"

namespace gimbal::queue_internal {
namespace {

class PriorityPolicy final : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override { return static_cast<double>(e.priority); }
  std::string name() const override { return "priority"; }
};

}  // namespace

FactoryResult NewPriority(const Params& /*p*/) {
  return std::unique_ptr<QueuePolicy>(std::make_unique<PriorityPolicy>());
}

}  // namespace gimbal::queue_internal
