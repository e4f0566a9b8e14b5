// PlacementPolicy: decides where expert replicas go, from source x expert routing statistics, the
// current placement and the topology. A policy is pure (no I/O, no clock); applying a plan
// (copying weights, switching routes) is the caller's job.
//
// Policies are created by name from a registry (MakePlacementPolicy), like dispatch policies; the
// built-ins are registered explicitly on first use (placement_registry.cc):
//   gimbal  source-aware heuristic (gimbal_placement.h); parameters: see GimbalPlacementConfig
//   eplb    the DeepSeek EPLB baseline (eplb.h); parameters: the objective weights it is scored
//           with (load_weight, traffic_weight, migration_weight)
//   exact   the mixed-integer program solved by CBC, small instances only (exact_solver.h);
//           parameters: the weights, max_moves_per_layer, time_limit_s
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/params.h"
#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual std::string_view name() const = 0;
  // Plans every layer. `current` must fit `stats` and `topology` (CheckPlacementInputs); the plan
  // has the current placement's shape and passes Placement::Validate.
  virtual Result<Placement> Plan(const SourceExpertCounts& stats, const Placement& current,
                                 const PlacementTopology& topology) const = 0;
  // The objective weights the policy plans with (used to report objective values).
  virtual ObjectiveWeights weights() const { return {}; }
};

using PlacementFactory =
    std::function<Result<std::unique_ptr<PlacementPolicy>>(const Params& params)>;

// Registers a factory under `name`; false when the name is taken or empty. The built-in policies
// are registered by the registry itself, so this is only for additional policies.
bool RegisterPlacementPolicy(const std::string& name, PlacementFactory factory);
// Creates the named policy. An unknown name is NotFound listing PlacementPolicyNames(); unknown or
// malformed parameters are InvalidArgument naming them (and the known keys); these and the
// policy's own errors start with "placement policy '<name>'".
Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const std::string& name,
                                                             const Params& params);
// Sorted.
std::vector<std::string> PlacementPolicyNames();

// The EPLB baseline as a policy (expert groups and nodes from the topology).
std::unique_ptr<PlacementPolicy> NewEplbPlacementPolicy(ObjectiveWeights weights = {});

}  // namespace gimbal
