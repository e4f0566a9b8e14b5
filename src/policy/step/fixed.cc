// vllm: a fixed token budget, the same on every rank and every step — vLLM's
// `max_num_batched_tokens` (vllm/config/scheduler.py; 8192 for the OpenAI server on GPUs with
// 70 GiB or more, vllm/engine/arg_utils.py). Ranks plan their steps independently.
#include <algorithm>

#include "policy/step/builtin_step_policies.h"

namespace gimbal::step_internal {
namespace {

class FixedBudgetPolicy final : public StepPolicy {
 public:
  void Budgets(std::span<const RankWork> ranks, int64_t max_budget,
               std::span<int64_t> budgets) const override {
    (void)ranks;
    std::fill(budgets.begin(), budgets.end(), max_budget);
  }
  std::string name() const override { return "vllm"; }
};

}  // namespace

FactoryResult NewFixedBudget(const Params& p, const StepDeps& deps) {
  (void)p;
  (void)deps;
  return std::unique_ptr<StepPolicy>(std::make_unique<FixedBudgetPolicy>());
}

}  // namespace gimbal::step_internal
