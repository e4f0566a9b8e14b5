// The step policy registry (built-ins registered explicitly on first use).
#include "policy/step/step_policy.h"

#include "core/name_registry.h"
#include "policy/step/builtin_step_policies.h"

namespace gimbal {
namespace {

NameRegistry<StepFactory>& Registry() {
  // Never destroyed: usable during static teardown.
  static auto* registry =
      new NameRegistry<StepFactory>("step policy", [](NameRegistry<StepFactory>& r) {
        using namespace step_internal;  // NOLINT(google-build-using-namespace)
        r.RegisterBuiltin("vllm", NewFixedBudget);
        r.RegisterBuiltin("gimbal", NewCoordinatedBudget);
      });
  return *registry;
}

}  // namespace

bool RegisterStepPolicy(const std::string& name, StepFactory factory) {
  return Registry().Register(name, std::move(factory));
}

std::vector<std::string> StepPolicyNames() {
  return Registry().Names();
}

Result<std::unique_ptr<StepPolicy>> MakeStepPolicy(const std::string& name, const Params& params,
                                                   const StepDeps& deps) {
  return Registry().Make(name, params, deps);
}

}  // namespace gimbal
