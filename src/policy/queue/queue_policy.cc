// The queue policy registry (built-ins registered explicitly on first use) and the mapping of
// sort keys to stock vLLM's integer priorities.
#include "policy/queue/queue_policy.h"

#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include "policy/queue/builtin_queue_policies.h"

namespace gimbal {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, QueueFactory> factories;  // GUARDED_BY(mu)
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: usable during static teardown
  return *registry;
}

bool RegisterLocked(Registry& r, const std::string& name, QueueFactory factory) {
  if (name.empty() || !factory) return false;
  return r.factories.emplace(name, std::move(factory)).second;
}

void RegisterBuiltinQueuePolicies(Registry& r) {
  using namespace queue_internal;  // NOLINT(google-build-using-namespace)
  RegisterLocked(r, "fcfs", NewFcfs);
  RegisterLocked(r, "gimbal", NewPrefillAging);
  RegisterLocked(r, "spf", NewShortestPrefillFirst);
  RegisterLocked(r, "priority", NewPriority);
}

std::unique_lock<std::mutex> LockRegistry(Registry& r) {
  static std::once_flag once;
  std::call_once(once, [&r] {
    std::lock_guard<std::mutex> lock(r.mu);
    RegisterBuiltinQueuePolicies(r);
  });
  return std::unique_lock<std::mutex>(r.mu);
}

}  // namespace

bool RegisterQueuePolicy(const std::string& name, QueueFactory factory) {
  Registry& r = GetRegistry();
  auto lock = LockRegistry(r);
  return RegisterLocked(r, name, std::move(factory));
}

std::vector<std::string> QueuePolicyNames() {
  Registry& r = GetRegistry();
  auto lock = LockRegistry(r);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

Result<std::unique_ptr<QueuePolicy>> MakeQueuePolicy(const std::string& name,
                                                     const Params& params) {
  QueueFactory factory;
  {
    Registry& r = GetRegistry();
    auto lock = LockRegistry(r);
    auto it = r.factories.find(name);
    if (it == r.factories.end()) {
      std::string known;
      for (const auto& [n, f] : r.factories) known += (known.empty() ? "" : ", ") + n;
      return NotFound("unknown queue policy '" + name + "' (known: " + known + ")");
    }
    factory = it->second;
  }
  const Params local(params.values());
  const std::string what = "queue policy '" + name + "'";
  Result<std::unique_ptr<QueuePolicy>> policy = factory(local);
  GIMBAL_RETURN_IF_ERROR(local.Validate(what));
  if (!policy.ok()) return policy.status().WithContext(what);
  return policy;
}

int64_t VllmPriorityFromKey(double key, double epoch) {
  // Milliseconds since the epoch, rounded down. Subtraction, scaling by a positive constant and
  // floor are each monotone non-decreasing, and so is the clamp to the int64 range.
  const double ms = std::floor((key - epoch) * 1000.0);
  constexpr double kMax = 9.2e18;  // below 2^63, exactly representable as a double
  if (std::isnan(ms)) return 0;
  if (ms >= kMax) return static_cast<int64_t>(kMax);
  if (ms <= -kMax) return -static_cast<int64_t>(kMax);
  return static_cast<int64_t>(ms);
}

}  // namespace gimbal
