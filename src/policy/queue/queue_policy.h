// QueuePolicy: the order in which an engine admits its waiting requests.
//
// A queue policy maps each waiting request to a sort key; the engine admits the smallest key
// first, breaking ties by arrival and then by id. Keys are computed once, when a request joins
// the queue, so a policy must not depend on anything that changes while the request waits.
// Preempted requests do not pass through the policy: they go back to the front, as in vLLM.
//
// Policies are created by name from a registry (MakeQueuePolicy), like dispatch policies.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/request.h"
#include "core/status.h"

namespace gimbal {

struct QueueEntry {
  RequestId id = 0;
  double arrival = 0;  // seconds, on the engine's clock
  int64_t prompt_tokens = 0;
  int64_t remaining_prefill = 0;  // prompt tokens not yet prefilled (= prompt for new requests)
  int64_t priority = 0;           // explicit priority from the request (lower first)
};

class QueuePolicy {
 public:
  virtual ~QueuePolicy() = default;
  // Smaller runs first. Seconds-like units for time-based policies.
  virtual double Key(const QueueEntry& e) const = 0;
  virtual std::string name() const = 0;
};

using QueueFactory = std::function<Result<std::unique_ptr<QueuePolicy>>(const Params& params)>;

bool RegisterQueuePolicy(const std::string& name, QueueFactory factory);
Result<std::unique_ptr<QueuePolicy>> MakeQueuePolicy(const std::string& name, const Params& params);
std::vector<std::string> QueuePolicyNames();

// The integer `priority` to send to stock vLLM run with `--scheduling-policy priority` so that it
// admits in the order of `key` (seconds since `epoch`): milliseconds, rounded down, monotone
// non-decreasing in key. Lower runs first; vLLM breaks ties by arrival.
int64_t VllmPriorityFromKey(double key, double epoch);

}  // namespace gimbal
