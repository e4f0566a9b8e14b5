#include "policy/placement/exact_solver.h"

#include <algorithm>
#include <limits>

#include <gtest/gtest.h>

#include "core/stats.h"
#include "placement/synthetic_stats.h"
#include "policy/placement/gimbal_placement.h"
#include "policy/placement/test_instances.h"

namespace gimbal {
namespace {

// Optimal routing on two GPUs for a fixed placement, by hand: send each token to its cheaper
// replica, then shift tokens from the heavier GPU to the lighter one, cheapest extra cost first,
// while the max-load saving beats the traffic cost.
double TwoGpuOptimum(const LayerProblem& p, const std::vector<std::vector<bool>>& on) {
  double load[2] = {0, 0}, traffic = 0;
  struct Shift {
    double extra;  // traffic cost per token of moving to the other GPU
    double amount;
    int from;
  };
  std::vector<Shift> shifts;
  for (int s = 0; s < p.sources; ++s) {
    for (int x = 0; x < p.experts; ++x) {
      const double a = p.A(s, x);
      if (a <= 0) continue;
      if (on[0][x] && on[1][x]) {
        const int g = p.C(s, 0) <= p.C(s, 1) ? 0 : 1;
        load[g] += a;
        traffic += a * p.C(s, g);
        shifts.push_back({p.C(s, 1 - g) - p.C(s, g), a, g});
      } else {
        const int g = on[0][x] ? 0 : 1;
        load[g] += a;
        traffic += a * p.C(s, g);
      }
    }
  }
  const int heavy = load[0] >= load[1] ? 0 : 1;
  std::sort(shifts.begin(), shifts.end(),
            [](const Shift& a, const Shift& b) { return a.extra < b.extra; });
  for (const Shift& sh : shifts) {
    if (sh.from != heavy) continue;
    if (p.load_coef() <= p.traffic_coef() * sh.extra) break;
    const double gap = (load[heavy] - load[1 - heavy]) / 2;
    if (gap <= 0) break;
    const double d = std::min(gap, sh.amount);
    load[heavy] -= d;
    load[1 - heavy] += d;
    traffic += d * sh.extra;
  }
  return p.load_coef() * std::max(load[0], load[1]) + p.traffic_coef() * traffic;
}

double BruteForce(const LayerProblem& p) {
  const int E = p.experts, K = p.slots_per_gpu;
  double best = std::numeric_limits<double>::infinity();
  for (uint32_t m0 = 0; m0 < (1u << E); ++m0) {
    if (__builtin_popcount(m0) != K) continue;
    for (uint32_t m1 = 0; m1 < (1u << E); ++m1) {
      if (__builtin_popcount(m1) != K || (m0 | m1) != (1u << E) - 1) continue;
      std::vector<std::vector<bool>> on(2, std::vector<bool>(E));
      int moves = 0;
      for (int x = 0; x < E; ++x) {
        on[0][x] = (m0 >> x) & 1;
        on[1][x] = (m1 >> x) & 1;
        for (int g = 0; g < 2; ++g) {
          moves += on[g][x] && p.current_count[static_cast<size_t>(x) * 2 + g] == 0;
        }
      }
      best = std::min(best, TwoGpuOptimum(p, on) + p.move_coef() * moves);
    }
  }
  return best;
}

TEST(ExactSolver, AgreesWithBruteForceOnTinyInstances) {
  if (!ExactSolverAvailable()) GTEST_SKIP() << "built without CBC";
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = 4;
    o.experts = 5;
    o.classes = 2;
    o.tokens_per_source = 100;
    o.noise_sigma = 0.5;
    o.seed = seed;
    SourceExpertCounts stats = SyntheticStats(o).Next();
    Placement cur = RandomPlacement(rng, 1, 5, 2, 3);
    PlacementTopology topo;
    topo.gpus = 2;
    topo.gpus_per_node = seed % 2 ? 1 : 2;
    ObjectiveWeights w;
    w.traffic = 0.1 + 0.2 * static_cast<double>(seed % 4);
    w.migration = 0.01 * static_cast<double>(seed % 3);
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, w);
    Result<ExactLayerResult> r = SolveLayerExact(p, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->proven_optimal);
    EXPECT_NEAR(r->objective, BruteForce(p), 1e-6) << "seed " << seed;
    // The solution's own routes reproduce its objective.
    EXPECT_NEAR(EvaluateRoutes(p, r->phy2log, r->routes).objective, r->objective, 1e-4);
  }
}

TEST(ExactSolver, HeuristicIsCloseToTheOptimumOnSmallInstances) {
  if (!ExactSolverAvailable()) GTEST_SKIP() << "built without CBC";
  std::vector<double> gaps;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = 8;
    o.experts = 8;
    o.classes = 2;
    o.seed = seed;
    SourceExpertCounts stats = SyntheticStats(o).Next();
    Placement cur = RandomPlacement(rng, 1, 8, 4, 3);
    PlacementTopology topo;
    topo.gpus = 4;
    topo.gpus_per_node = 2;
    GimbalPlacementConfig cfg;
    cfg.max_moves_per_layer = -1;
    cfg.min_gain = 0;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, cfg.weights);
    const LayerPlan h = PlanLayerGimbal(p, cfg);
    ExactOptions eo;
    eo.start = h.phy2log;
    Result<ExactLayerResult> ex = SolveLayerExact(p, eo);
    ASSERT_TRUE(ex.ok());
    EXPECT_GE(h.eval.objective, ex->objective - 1e-6);
    gaps.push_back(h.eval.objective / ex->objective - 1);
  }
  EXPECT_LT(Percentile(gaps, 50), 0.03);
}

TEST(ExactSolver, RespectsTheMigrationBudget) {
  if (!ExactSolverAvailable()) GTEST_SKIP() << "built without CBC";
  Rng rng(3);
  SyntheticStatsOptions o;
  o.sources = 8;
  o.experts = 8;
  SourceExpertCounts stats = SyntheticStats(o).Next();
  Placement cur = RandomPlacement(rng, 1, 8, 4, 3);
  PlacementTopology topo;
  topo.gpus = 4;
  topo.gpus_per_node = 2;
  ExactOptions opt;
  opt.max_moves_per_layer = 1;
  Result<Placement> plan = PlanExact(stats, cur, topo, {}, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_TRUE(plan->Validate().ok()) << plan->Validate().message();
  const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
  EXPECT_LE(CountMoves(p, plan->phy2log), 1);
}

TEST(ExactSolver, SaysClearlyWhenCbcIsMissing) {
  if (ExactSolverAvailable()) GTEST_SKIP() << "built with CBC";
  Result<ExactLayerResult> r = SolveLayerExact(LayerProblem{}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("CBC"), std::string::npos);
}

}  // namespace
}  // namespace gimbal
