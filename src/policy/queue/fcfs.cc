// fcfs: first come, first served (vLLM's default scheduling policy): key = arrival.
#include "policy/queue/builtin_queue_policies.h"

namespace gimbal::queue_internal {
namespace {

class FcfsPolicy final : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override { return e.arrival; }
  std::string name() const override { return "fcfs"; }
};

}  // namespace

FactoryResult NewFcfs(const Params& /*p*/) {
  return std::unique_ptr<QueuePolicy>(std::make_unique<FcfsPolicy>());
}

}  // namespace gimbal::queue_internal
