// The queue policy registry (built-ins registered explicitly on first use) and the mapping of
// sort keys to stock vLLM's integer priorities.
#include "policy/queue/queue_policy.h"

#include <cmath>
#include <limits>

#include "core/name_registry.h"
#include "policy/queue/builtin_queue_policies.h"

namespace gimbal {
namespace {

NameRegistry<QueueFactory>& Registry() {
  // Never destroyed: usable during static teardown.
  static auto* registry =
      new NameRegistry<QueueFactory>("queue policy", [](NameRegistry<QueueFactory>& r) {
        using namespace queue_internal;  // NOLINT(google-build-using-namespace)
        r.RegisterBuiltin("fcfs", NewFcfs);
        r.RegisterBuiltin("gimbal", NewPrefillAging);
        r.RegisterBuiltin("spf", NewShortestPrefillFirst);
        r.RegisterBuiltin("priority", NewPriority);
      });
  return *registry;
}

}  // namespace

bool RegisterQueuePolicy(const std::string& name, QueueFactory factory) {
  return Registry().Register(name, std::move(factory));
}

std::vector<std::string> QueuePolicyNames() {
  return Registry().Names();
}

Result<std::unique_ptr<QueuePolicy>> MakeQueuePolicy(const std::string& name,
                                                     const Params& params) {
  return Registry().Make(name, params);
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
