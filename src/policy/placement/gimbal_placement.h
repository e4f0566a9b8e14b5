// Gimbal's source-aware placement heuristic, guided by the program of DESIGN §2.3.
//
// Per MoE layer, starting from the current placement:
//  1. replica counts: move replicas from the coldest to the hottest expert by per-replica load
//     (hottest first) while that lowers the largest per-replica load by more than count_slack;
//     each new replica lands where it lowers the objective most;
//  2. local search with swaps that move replicas towards their heaviest sources and off the most
//     loaded GPU, judged on a fast surrogate (even split for load, nearest replica for traffic);
//  3. on small layers, hill climbing on the exact objective (swaps and replica changes);
//  4. routing: each source's tokens to its nearest replica below a load cap (the cap is chosen
//     among a few to minimise the objective), which fills Placement::source_routes;
//  5. hysteresis: the new plan replaces the current one only when it lowers the objective by more
//     than min_gain (relative); otherwise the current placement is kept, with fresh routes.
// Every step respects the migration budget (experts copied per layer). The result's objective is
// never above the current placement's. Pure: no I/O, no clock.
#pragma once

#include "core/params.h"
#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

struct GimbalPlacementConfig {
  ObjectiveWeights weights;       // λ1 load_weight, λ2 traffic_weight, λ3 migration_weight
  int max_moves_per_layer = 32;   // migration budget; < 0: unlimited
  double min_gain = 0.005;        // hysteresis: relative objective gain needed to change a layer
  double count_slack = 0.05;      // replica count changes must cut the peak per-replica load by this
  int search_evals = 3000;        // surrogate evaluations per layer in the local search
  int64_t refine_work = 300000;   // exact-objective refinement budget per layer (token-pair visits)
  bool emit_routes = true;        // fill Placement::source_routes

  // Keys: load_weight, traffic_weight, migration_weight, max_moves_per_layer, min_gain,
  // count_slack, search_evals, refine_work, emit_routes. Unknown keys are an error.
  static Result<GimbalPlacementConfig> FromParams(const Params& params);
};

struct LayerPlan {
  std::vector<int32_t> phy2log;  // slots of this layer
  LayerRoutes routes;            // empty unless emit_routes
  LayerEval eval;                // the returned plan
  LayerEval current_eval;        // the current placement, routed the same way
  bool kept_current = false;
};

LayerPlan PlanLayerGimbal(const LayerProblem& problem, const GimbalPlacementConfig& config);

// All layers. `current` must fit the stats and topology (CheckPlacementInputs).
Result<Placement> PlanGimbal(const SourceExpertCounts& stats, const Placement& current,
                             const PlacementTopology& topology, const GimbalPlacementConfig& config);

}  // namespace gimbal
