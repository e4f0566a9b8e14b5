// The dispatch policy registry. Built-in policies are registered explicitly, once, on first use
// (see builtin_policies.h for why not from static initialisers).
#include "policy/dispatch/dispatch_policy.h"

#include "core/name_registry.h"
#include "policy/dispatch/builtin_policies.h"

namespace gimbal {
namespace {

NameRegistry<DispatchFactory>& Registry() {
  // Never destroyed: usable during static teardown.
  static auto* registry =
      new NameRegistry<DispatchFactory>("dispatch policy", [](NameRegistry<DispatchFactory>& r) {
        using namespace dispatch_internal;  // NOLINT(google-build-using-namespace)
        r.RegisterBuiltin("round_robin", NewRoundRobin);
        r.RegisterBuiltin("vllm", NewVllm);
        r.RegisterBuiltin("vllm_kv", NewVllmKv);
        r.RegisterBuiltin("vllm_2025", NewVllm2025);
        r.RegisterBuiltin("vllm_kv_2025", NewVllmKv2025);
        r.RegisterBuiltin("least_requests", NewLeastRequests);
        r.RegisterBuiltin("power_of_two", NewPowerOfTwo);
        r.RegisterBuiltin("llmd", NewLlmd);
        r.RegisterBuiltin("sglang", NewSglang);
        r.RegisterBuiltin("dynamo", NewDynamo);
        r.RegisterBuiltin("gimbal", NewGimbal);
        r.RegisterBuiltin("gimbal_predictive", NewGimbalPredictive);
      });
  return *registry;
}

}  // namespace

bool RegisterDispatchPolicy(const std::string& name, DispatchFactory factory) {
  return Registry().Register(name, std::move(factory));
}

std::vector<std::string> DispatchPolicyNames() {
  return Registry().Names();
}

Result<std::unique_ptr<DispatchPolicy>> MakeDispatchPolicy(const std::string& name,
                                                           const Params& params,
                                                           const DispatchDeps& deps) {
  return Registry().Make(name, params, deps);
}

}  // namespace gimbal
