// The dispatch policy registry. Built-in policies are registered explicitly, once, on first use
// (see builtin_policies.h for why not from static initialisers).
#include "policy/dispatch/dispatch_policy.h"

#include <map>
#include <mutex>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, DispatchFactory> factories;  // GUARDED_BY(mu)
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: usable during static teardown
  return *registry;
}

bool RegisterLocked(Registry& r, const std::string& name, DispatchFactory factory) {
  if (name.empty() || !factory) return false;
  return r.factories.emplace(name, std::move(factory)).second;
}

void RegisterBuiltinDispatchPolicies(Registry& r) {
  using namespace dispatch_internal;  // NOLINT(google-build-using-namespace)
  RegisterLocked(r, "round_robin", NewRoundRobin);
  RegisterLocked(r, "vllm", NewVllm);
  RegisterLocked(r, "vllm_kv", NewVllmKv);
  RegisterLocked(r, "least_requests", NewLeastRequests);
  RegisterLocked(r, "power_of_two", NewPowerOfTwo);
  RegisterLocked(r, "llmd", NewLlmd);
  RegisterLocked(r, "sglang", NewSglang);
  RegisterLocked(r, "dynamo", NewDynamo);
  RegisterLocked(r, "gimbal", NewGimbal);
  RegisterLocked(r, "gimbal_predictive", NewGimbalPredictive);
}

// Locks the registry, registering the built-ins the first time.
std::unique_lock<std::mutex> LockRegistry(Registry& r) {
  static std::once_flag once;
  std::call_once(once, [&r] {
    std::lock_guard<std::mutex> lock(r.mu);
    RegisterBuiltinDispatchPolicies(r);
  });
  return std::unique_lock<std::mutex>(r.mu);
}

}  // namespace

bool RegisterDispatchPolicy(const std::string& name, DispatchFactory factory) {
  Registry& r = GetRegistry();
  auto lock = LockRegistry(r);
  return RegisterLocked(r, name, std::move(factory));
}

std::vector<std::string> DispatchPolicyNames() {
  Registry& r = GetRegistry();
  auto lock = LockRegistry(r);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

Result<std::unique_ptr<DispatchPolicy>> MakeDispatchPolicy(const std::string& name,
                                                           const Params& params,
                                                           const DispatchDeps& deps) {
  DispatchFactory factory;
  {
    Registry& r = GetRegistry();
    auto lock = LockRegistry(r);
    auto it = r.factories.find(name);
    if (it == r.factories.end()) {
      std::string known;
      for (const auto& [n, f] : r.factories) known += (known.empty() ? "" : ", ") + n;
      return NotFound("unknown dispatch policy '" + name + "' (known: " + known + ")");
    }
    factory = it->second;
  }
  // A fresh copy, so which keys were read reflects this policy alone.
  const Params local(params.values());
  const std::string what = "dispatch policy '" + name + "'";
  Result<std::unique_ptr<DispatchPolicy>> policy = factory(local, deps);
  // Unknown and malformed parameters are reported first: they usually explain a range error.
  GIMBAL_RETURN_IF_ERROR(local.Validate(what));
  if (!policy.ok()) return policy.status().WithContext(what);
  return policy;
}

}  // namespace gimbal
