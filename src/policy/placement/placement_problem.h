// The placement problem of DESIGN §2.3, one MoE layer at a time: topology, objective, token
// routing for a fixed placement, and the quality metrics of §6.
//
// Objective of a layer (as in the design, with the weights scaled by per-layer constants so that
// defaults do not depend on how many tokens the statistics window holds):
//   λ1 · max_g load(g) / L̄  +  λ2 · Σ c(s,g)·f[s][x][g] / T  +  λ3 · Σ bytes(x)·moved(x,g) / B
// T = tokens of the layer, L̄ = T / gpus (mean GPU load), B = bytes of one expert. So λ1 weighs
// max/mean load, λ2 the cost-weighted fraction of tokens leaving their GPU, λ3 each expert copied.
// c(s,g) = 0 when source s runs on GPU g, alpha within a node, beta across nodes. Source s runs on
// GPU s·gpus/sources (with as many sources as GPUs, source s on GPU s). moved(x,g) counts replicas
// of x on g beyond those g held in the current placement.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/params.h"
#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

// Bounds of a topology, so that costs times token counts (<= kMaxRoutingCount) stay finite.
inline constexpr double kMaxHopCost = 1e6;       // alpha, beta
inline constexpr double kMaxExpertBytes = 1e15;  // expert_bytes

struct PlacementTopology {
  int gpus = 0;
  int gpus_per_node = 0;    // 0: all GPUs on one node
  double alpha = 0.2;       // per-token cost of a hop between GPUs of one node (<= kMaxHopCost)
  double beta = 1.0;        // per-token cost of a hop across nodes (<= kMaxHopCost)
  int slots_per_gpu = 0;    // 0: taken from the current placement, else experts / gpus
  int expert_groups = 1;    // DeepSeek expert groups (EPLB's hierarchical mode)
  double expert_bytes = 1;  // bytes of one expert's weights in one layer

  int nodes() const { return gpus_per_node > 0 ? gpus / gpus_per_node : 1; }
  int NodeOf(int gpu) const { return gpus_per_node > 0 ? gpu / gpus_per_node : 0; }
  double Cost(int from_gpu, int to_gpu) const {
    if (from_gpu == to_gpu) return 0;
    return NodeOf(from_gpu) == NodeOf(to_gpu) ? alpha : beta;
  }
  Status Validate() const;
};

inline int SourceGpu(int source, int sources, int gpus) {
  return static_cast<int>(static_cast<int64_t>(source) * gpus / sources);
}

struct ObjectiveWeights {
  double load = 1.0;         // λ1
  double traffic = 0.25;     // λ2
  double migration = 0.002;  // λ3 (per expert copied)
};

// One layer, ready to evaluate: counts, costs, the current placement's replica counts. `counts`
// views the statistics it was made from, which must outlive it and stay unchanged.
struct LayerProblem {
  int sources = 0, experts = 0, gpus = 0, slots_per_gpu = 0;
  std::span<const double> counts;  // sources x experts (the statistics' layer)
  bool counts_valid = true;        // every count in [0, kMaxRoutingCount] (as stats.Validate())
  std::vector<double> by_expert;   // experts x sources: the counts transposed, negative ones as 0
  std::vector<double> totals;      // per expert
  double total = 0;                // T
  std::vector<int> source_gpu;     // per source
  std::vector<int> node_of_gpu;    // per gpu
  int nodes = 1;
  double alpha = 0, beta = 0;       // the topology's costs (c(s,g) takes the values 0, alpha, beta)
  std::vector<int32_t> current;     // gpus * slots_per_gpu (phy2log of the current placement)
  std::vector<int> current_count;   // experts x gpus: replicas of x on g now
  std::vector<double> gpu_demand;   // experts x gpus: tokens the sources on GPU g send to x
  std::vector<double> node_demand;  // experts x nodes: tokens the sources on node n send to x
  double expert_bytes = 1;
  ObjectiveWeights weights;

  int slots() const { return gpus * slots_per_gpu; }
  double A(int s, int x) const { return counts[static_cast<size_t>(s) * experts + x]; }
  // Expert x's counts by source (max(0, A(s, x)) for s in [0, sources)), contiguous.
  const double* ExpertCounts(int x) const { return &by_expert[static_cast<size_t>(x) * sources]; }
  // c(s, g): 0 on the source's GPU, alpha on its node, else beta.
  double C(int s, int g) const {
    const int sg = source_gpu[s];
    return sg == g ? 0.0 : node_of_gpu[sg] == node_of_gpu[g] ? alpha : beta;
  }
  double GpuDemand(int x, int g) const { return gpu_demand[static_cast<size_t>(x) * gpus + g]; }
  double NodeDemand(int x, int n) const { return node_demand[static_cast<size_t>(x) * nodes + n]; }
  // A layer of fewer than kMinLayerTokens tokens (counts of 1e-310 add up to a subnormal, whose
  // inverse overflows and made every score infinite) is planned as carrying none.
  static constexpr double kMinLayerTokens = 1e-200;
  double load_coef() const { return total > kMinLayerTokens ? weights.load * gpus / total : 0; }
  double traffic_coef() const { return total > kMinLayerTokens ? weights.traffic / total : 0; }
  double move_coef() const { return weights.migration; }
};

// `current` must have the stats' experts, the topology's gpus, and a valid phy2log; `stats`
// must outlive the problem (its counts are viewed, not copied).
LayerProblem MakeLayerProblem(const SourceExpertCounts& stats, int layer, const Placement& current,
                              const PlacementTopology& topology, const ObjectiveWeights& weights);
// MakeLayerProblem into `p`, reusing its buffers (for planning layer after layer).
void FillLayerProblem(const SourceExpertCounts& stats, int layer, const Placement& current,
                      const PlacementTopology& topology, const ObjectiveWeights& weights,
                      LayerProblem& p);

// How one layer's plan scores. Loads and token counts are in tokens.
struct LayerEval {
  double max_load = 0, mean_load = 0;
  double cross_gpu_tokens = 0, cross_node_tokens = 0, total_tokens = 0;
  double traffic_cost = 0;  // Σ c·f
  int experts_moved = 0;
  double objective = 0;
  double max_over_mean() const { return mean_load > 0 ? max_load / mean_load : 1.0; }
};

// Replicas of x on g beyond the current placement's (a copy each).
int CountMoves(const LayerProblem& p, std::span<const int32_t> phy2log);

// Token routing of one layer: routes[s * experts + x] = (slot, weight) pairs summing to 1.
using LayerRoutes = SourceRoutes;

// Token routing for a fixed placement, the best by the objective of two families, each at several
// caps (multiples of the lower bound on the peak load):
//  - nearest replica below a cap: each source's tokens for an expert go to its nearest replica
//    while that GPU's load stays under the cap, spilling to the next nearest, and to the
//    least-loaded replica when all are full;
//  - balanced: vLLM's even split over the expert's slots, then each source's tokens move from
//    farther to nearer replicas while the nearer GPU stays under max(cap, the even split's peak).
// The result's objective is never above the even split's (EvaluateRoutes with empty routes).
// Fills `routes` when not null. Implemented in replica_routing.cc.
LayerEval RouteAndEvaluate(const LayerProblem& p, std::span<const int32_t> phy2log,
                           LayerRoutes* routes);

// RouteAndEvaluate appending the layer's sources x experts routes to `routes` (for example
// Placement::source_routes, layer after layer); nullptr: no routes.
LayerEval RouteAndEvaluateInto(const LayerProblem& p, std::span<const int32_t> phy2log,
                               SourceRoutes* routes);

// Evaluates the routes routes[first + s * experts + x]; empty routes (no routes at all, or an
// empty route) mean vLLM's even split over an expert's replicas.
LayerEval EvaluateRoutes(const LayerProblem& p, std::span<const int32_t> phy2log,
                         const SourceRoutes& routes, size_t first = 0);

// Quality of a whole placement (its source_routes, or the even split when it has none) for the
// stats, against `current`.
struct PlacementQuality {
  std::vector<LayerEval> layers;
  // Summaries: mean over layers of max/mean, token-weighted crossing fractions, totals.
  double mean_max_over_mean = 0, worst_max_over_mean = 0;
  double cross_gpu_fraction = 0, cross_node_fraction = 0;
  int64_t experts_moved = 0;
  double bytes_moved = 0;
  double objective = 0;  // sum over layers
};

Result<PlacementQuality> EvaluatePlacement(const SourceExpertCounts& stats, const Placement& plan,
                                           const Placement& current,
                                           const PlacementTopology& topology,
                                           const ObjectiveWeights& weights);

// Checks the stats, the current placement and the topology fit together, and that the planning
// arrays (experts x GPUs, sources x GPUs) stay within kMaxRoutingCells.
Status CheckPlacementInputs(const SourceExpertCounts& stats, const Placement& current,
                            const PlacementTopology& topology);

// CheckPlacementInputs without reading the count values (they are most of its time at scale):
// the same error for any bad input but bad counts. A caller must then check each layer's
// LayerProblem::counts_valid and return stats.Validate() for the first layer whose are not: the
// error CheckPlacementInputs would have given, as the layers before it are valid.
Status CheckPlacementInputsButCounts(const SourceExpertCounts& stats, const Placement& current,
                                     const PlacementTopology& topology);

// The current placement to assume when none is given: Placement::Contiguous with the topology's
// slots per GPU (experts must divide over GPUs; slots_per_gpu >= experts / gpus).
Result<Placement> DefaultCurrentPlacement(const SourceExpertCounts& stats,
                                          const PlacementTopology& topology);

}  // namespace gimbal
