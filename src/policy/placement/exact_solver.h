// Exact solving of the placement program of DESIGN §2.3 on small instances, one layer at a time,
// with COIN-OR CBC on this linearisation (token counts scaled by the layer's total T):
//   min  λ1·gpus·t + λ2·Σ c(s,g)·f[s][x][g] + λ3·Σ_{(x,g) not in current} y[x][g]
//   s.t. Σ_g f[s][x][g] = A[s][x]/T            every source s, expert x with A > 0
//        f[s][x][g] <= (A[s][x]/T)·y[x][g]      (a GPU serves x only if it holds x)
//        Σ_x y[x][g] = slots_per_gpu            every GPU
//        Σ_g y[x][g] >= 1                       every expert
//        Σ_{s,x} f[s][x][g] <= t                every GPU (t is the epigraph of the max load)
//        Σ_{(x,g) not in current} y[x][g] <= B  (migration budget, when set)
//        y binary, f >= 0, t >= 0
// y binary means at most one replica of an expert per GPU (a second one never helps). Because y
// is binary, moved(x,g) = y[x][g] where the current placement lacks x on g, and 0 elsewhere, so
// the migration term is linear without extra variables. The nonlinear form (tokens split evenly
// over replicas, or non-linear expert time) is not solved here; see docs/placement.md.
//
// Built only with GIMBAL_WITH_CBC; otherwise every call returns kUnsupported.
#pragma once

#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

struct ExactOptions {
  int max_moves_per_layer = -1;  // < 0: unlimited
  double time_limit_s = 60;      // per layer; the result says whether optimality was proven
  int max_binaries = 4096;       // experts x gpus above this is refused (kResourceExhausted)
  // A known plan of the layer (e.g. the heuristic's) to start branch and bound from; the optimum
  // does not depend on it, only the time to prove it.
  std::vector<int32_t> start;
};

struct ExactLayerResult {
  std::vector<int32_t> phy2log;  // this layer's slots
  LayerRoutes routes;            // from the optimal flows
  double objective = 0;          // the program's optimum, on the same scale as LayerEval
  bool proven_optimal = false;
};

bool ExactSolverAvailable();

Result<ExactLayerResult> SolveLayerExact(const LayerProblem& problem, const ExactOptions& options);

Result<Placement> PlanExact(const SourceExpertCounts& stats, const Placement& current,
                            const PlacementTopology& topology, const ObjectiveWeights& weights,
                            const ExactOptions& options);

}  // namespace gimbal
