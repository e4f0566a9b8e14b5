// Gimbal's source-aware placement heuristic, guided by the program of DESIGN §2.3.
//
// Per MoE layer, starting from the current placement:
//  1. replica counts: move replicas from the coldest to the hottest expert by per-replica load
//     (hottest first) while that lowers the largest per-replica load by more than count_slack
//     and (count_must_gain) the surrogate objective below; each new replica lands where it
//     lowers the objective most;
//  1b. replicas for locality: a spare replica (of an expert that stays at most
//     locality_spare_load x the mean slot load after losing it) is given to an expert with much
//     demand on its node and no replica there, when the surrogate objective drops and the
//     surrogate's peak does not rise (at most locality_replicas per layer); on layers small
//     enough for step 5 the search also runs without this step and the better plan is kept;
//  2. node locality: an expert whose demand is mostly on a node without a replica swaps its least
//     useful replica onto that node, while node loads stay within node_slack of the mean (GPU
//     loads within gpu_slack) and the surrogate's traffic drops;
//  3. local search with swaps that move replicas towards their heaviest sources and off the most
//     loaded GPU, judged on a fast surrogate (even split for load, nearest replica for traffic);
//     steps 2 and 3 leave repair_moves of the migration budget to step 4;
//  4. balance repair: while the most loaded GPU (even split) is more than balance_target above
//     the mean, swap one of its replicas with a lighter one, within its node when possible; no
//     repair swap raises the peak; the repaired layout is kept only when the surrogate objective
//     (even-split peak, nearest-replica traffic, copies) does not rise;
//  5. on small layers, hill climbing on the exact objective (swaps and replica changes);
//  6. routing: RouteAndEvaluate (nearest replica under a load cap, or the even split with tokens
//     moved to nearer replicas under a cap), which fills Placement::source_routes;
//  7. hysteresis: the new plan replaces the current one only when it lowers the objective by more
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

// Upper bounds FromParams enforces (far above any useful setting).
inline constexpr double kMaxObjectiveWeight = 1e6;
inline constexpr int kMaxSearchEvals = 1000000;
inline constexpr int64_t kMaxRefineWork = 100000000;

struct GimbalPlacementConfig {
  // λ1 load_weight, λ2 traffic_weight, λ3 migration_weight. The planner's defaults weigh traffic
  // more and copies less than ObjectiveWeights' defaults; the copy budget below bounds the copies
  // instead (see docs/placement.md).
  ObjectiveWeights weights{.load = 1.0, .traffic = 2.0, .migration = 0.0001};
  int max_moves_per_layer = 40;  // migration budget; < 0: unlimited
  double min_gain = 0.005;       // hysteresis: relative objective gain needed to change a layer
  double count_slack = 0.05;     // replica count changes must cut the peak per-replica load by this
  int search_evals = 3000;       // surrogate evaluations per layer in the local search
  int64_t refine_work = 300000;  // exact-objective refinement budget per layer (token-pair visits)
  bool emit_routes = true;       // fill Placement::source_routes
  double balance_target = 0.02;  // repair stops at peak <= (1 + this) x mean GPU load; < 0: off
  int repair_moves = 8;          // part of the budget steps 2-3 leave to the repair
  double node_slack = 0.02;      // node locality: node load cap above the mean; < 0: step off
  double gpu_slack = 0.15;       // node locality: GPU load cap above the mean
  bool count_must_gain = true;   // replica count changes must lower the surrogate objective
  int locality_replicas = 32;    // replicas re-targeted for node locality per layer; 0: off
  double locality_spare_load = 2.5;  // ... taken from experts at most this x mean slot load after
                                     // losing one

  // Keys: load_weight, traffic_weight, migration_weight, max_moves_per_layer, min_gain,
  // count_slack, search_evals, refine_work, emit_routes, balance_target, repair_moves, node_slack,
  // gpu_slack, count_must_gain, locality_replicas, locality_spare_load. Unknown keys are an error.
  // Numeric values must be >= 0 except node_slack and balance_target (< 0: step off) and
  // max_moves_per_layer (< 0: unlimited); the weights at most kMaxObjectiveWeight, search_evals
  // and refine_work at most kMaxSearchEvals and kMaxRefineWork. Unknown or malformed keys give an
  // error that starts with "placement policy 'gimbal'"; a value out of range one that names the
  // keys (MakePlacementPolicy adds the policy's name).
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

// All layers. `current` must fit the stats and topology: otherwise the error CheckPlacementInputs
// gives (the count values are checked layer by layer as they are read, not in a pass before).
Result<Placement> PlanGimbal(const SourceExpertCounts& stats, const Placement& current,
                             const PlacementTopology& topology,
                             const GimbalPlacementConfig& config);

}  // namespace gimbal
