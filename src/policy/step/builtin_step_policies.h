// Factories of the built-in step policies, registered by step_policy.cc.
#pragma once

#include <memory>

#include "policy/step/step_policy.h"

namespace gimbal::step_internal {

using FactoryResult = Result<std::unique_ptr<StepPolicy>>;

// `vllm`: every rank gets the full budget, every step (vLLM's fixed max_num_batched_tokens).
FactoryResult NewFixedBudget(const Params& p, const StepDeps& deps);
// `gimbal`: budgets that hold every rank's step near a common target time (coordinated.cc).
FactoryResult NewCoordinatedBudget(const Params& p, const StepDeps& deps);

}  // namespace gimbal::step_internal
