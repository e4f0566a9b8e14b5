// Factories of the built-in queue policies. Internal to gimbal_queue: configs select policies by
// name through MakeQueuePolicy (queue_policy.h). The registry (queue_policy.cc) registers each
// factory explicitly, since a static library drops object files nobody references.
#pragma once

#include <memory>

#include "policy/queue/queue_policy.h"

namespace gimbal::queue_internal {

using FactoryResult = Result<std::unique_ptr<QueuePolicy>>;

FactoryResult NewFcfs(const Params& p);
FactoryResult NewPrefillAging(const Params& p);          // "gimbal"
FactoryResult NewShortestPrefillFirst(const Params& p);  // "spf"
FactoryResult NewPriority(const Params& p);

}  // namespace gimbal::queue_internal
