// PlacementPolicy: decides where expert replicas go, from source x expert routing statistics, the
// current placement and the topology. A policy is pure (no I/O, no clock); applying a plan
// (copying weights, switching routes) is the caller's job.
//
// Policies are created by name from a registry (placement_registry.cc registers them explicitly):
//   gimbal  source-aware heuristic (gimbal_placement.h); parameters: see GimbalPlacementConfig
//   eplb    the DeepSeek EPLB baseline (eplb.h); no parameters
//   exact   the mixed-integer program solved by CBC, small instances only (exact_solver.h)
#pragma once

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

// Creates the named policy; unknown names and parameters are errors that list what is known.
Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const std::string& name,
                                                             const Params& params);
std::vector<std::string> PlacementPolicyNames();

// The EPLB baseline as a policy (expert groups and nodes from the topology).
std::unique_ptr<PlacementPolicy> NewEplbPlacementPolicy(ObjectiveWeights weights = {});

}  // namespace gimbal
