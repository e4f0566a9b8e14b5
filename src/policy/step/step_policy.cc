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
  Result<StepFactory> factory = Registry().Find(name);
  if (!factory.ok()) return factory.status();
  const Params local(params.values());
  const std::string what = "step policy '" + name + "'";
  Result<std::unique_ptr<StepPolicy>> policy = (*factory)(local, deps);
  GIMBAL_RETURN_IF_ERROR(local.Validate(what));
  if (!policy.ok()) return policy.status().WithContext(what);
  return policy;
}

}  // namespace gimbal
