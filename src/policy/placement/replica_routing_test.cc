#include "policy/placement/replica_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "placement/synthetic_stats.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/test_instances.h"

namespace gimbal {
namespace {

// The per-GPU and per-node demand of a layer problem add up the sources' counts; the by-expert
// table is the counts transposed.
TEST(ReplicaRouting, DemandTablesSumTheSources) {
  SyntheticStatsOptions o;
  o.sources = 16;
  o.experts = 24;
  o.classes = 4;
  o.seed = 5;
  const SourceExpertCounts stats = SyntheticStats(o).Next();
  Rng rng(5);
  const Placement cur = RandomPlacement(rng, 1, 24, 8, 4);
  PlacementTopology topo;
  topo.gpus = 8;
  topo.gpus_per_node = 4;
  const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
  for (int x = 0; x < p.experts; ++x) {
    double by_gpu = 0, by_node = 0;
    for (int g = 0; g < p.gpus; ++g) by_gpu += p.GpuDemand(x, g);
    for (int n = 0; n < p.nodes; ++n) by_node += p.NodeDemand(x, n);
    EXPECT_NEAR(by_gpu, p.totals[x], 1e-6);
    EXPECT_NEAR(by_node, p.totals[x], 1e-6);
    double on_gpu3 = 0;
    for (int s = 0; s < p.sources; ++s) on_gpu3 += p.source_gpu[s] == 3 ? p.A(s, x) : 0;
    for (int s = 0; s < p.sources; ++s) EXPECT_EQ(p.ExpertCounts(x)[s], std::max(0.0, p.A(s, x)));
    EXPECT_NEAR(p.GpuDemand(x, 3), on_gpu3, 1e-6);
  }
}

// MakeLayerProblem's tables are the plain sums in source order, bit for bit (the fast path for
// valid counts sums the transpose; -0.0 there reads as +0.0, and a negative count takes the plain
// path), its costs the topology's; FillLayerProblem into a problem of another shape gives the
// same problem.
TEST(ReplicaRouting, ProblemTablesAreThePlainSums) {
  LayerProblem reused;
  int checked = 0;
  for (int seed = 0; seed < 12; ++seed) {
    SyntheticStatsOptions o;
    o.layers = 2;
    o.sources = seed % 3 == 0 ? 8 : 16;
    o.experts = 24;
    o.classes = 4;
    o.seed = static_cast<uint64_t>(seed);
    SourceExpertCounts stats = SyntheticStats(o).Next();
    Rng rng(static_cast<uint64_t>(seed));
    const int gpus = seed % 2 == 0 ? 8 : 4;
    const Placement cur = RandomPlacement(rng, 2, 24, gpus, 48 / gpus);
    PlacementTopology topo;
    topo.gpus = gpus;
    topo.gpus_per_node = seed % 4 < 2 ? 2 : gpus;
    for (int k = 0; k < 10; ++k) {
      const size_t i = rng.UniformInt(static_cast<uint64_t>(stats.counts.size()));
      stats.counts[i] = k % 2 == 0 ? -0.0 : 0.1 * (k + 1) + 1e-7 * seed;
    }
    if (seed % 3 == 2) stats.counts[stats.Index(1, 3, 5)] = -4.5;  // layer 1: the plain path
    for (int l = 0; l < 2; ++l) {
      const LayerProblem p = MakeLayerProblem(stats, l, cur, topo, {});
      EXPECT_EQ(p.counts_valid, !(seed % 3 == 2 && l == 1));
      for (int x = 0; x < p.experts; ++x) {
        double total = 0;
        std::vector<double> gd(p.gpus, 0.0), nd(p.nodes, 0.0);
        for (int s = 0; s < p.sources; ++s) {
          const double a = stats.At(l, s, x);
          total += a;
          gd[p.source_gpu[s]] += a;
          nd[topo.NodeOf(p.source_gpu[s])] += a;
          EXPECT_EQ(p.A(s, x), a);
        }
        // Bit for bit, so +0.0 and -0.0 differ.
        EXPECT_EQ(std::signbit(p.totals[x]), std::signbit(total));
        EXPECT_EQ(p.totals[x], total);
        for (int g = 0; g < p.gpus; ++g) {
          EXPECT_EQ(p.GpuDemand(x, g), gd[g]);
          EXPECT_EQ(std::signbit(p.GpuDemand(x, g)), std::signbit(gd[g]));
        }
        for (int n = 0; n < p.nodes; ++n) {
          EXPECT_EQ(p.NodeDemand(x, n), nd[n]);
          EXPECT_EQ(std::signbit(p.NodeDemand(x, n)), std::signbit(nd[n]));
        }
      }
      for (int s = 0; s < p.sources; ++s) {
        for (int g = 0; g < p.gpus; ++g) EXPECT_EQ(p.C(s, g), topo.Cost(p.source_gpu[s], g));
      }
      FillLayerProblem(stats, l, cur, topo, {}, reused);
      EXPECT_EQ(reused.totals, p.totals);
      EXPECT_EQ(reused.gpu_demand, p.gpu_demand);
      EXPECT_EQ(reused.node_demand, p.node_demand);
      EXPECT_EQ(reused.by_expert, p.by_expert);
      EXPECT_EQ(reused.current_count, p.current_count);
      EXPECT_EQ(reused.node_of_gpu, p.node_of_gpu);
      EXPECT_EQ(reused.total, p.total);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 24);
}

// RouteAndEvaluate scores single-replica experts from the demand tables and multi-replica experts
// per source; its figures must be those of the routes it returns, scored token by token, and never
// worse than the even split, for one or two sources per GPU and for the corner costs alpha = 0
// and alpha = beta.
TEST(ReplicaRouting, FiguresMatchTheReturnedRoutes) {
  int checked = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    const int gpus = seed % 2 ? 8 : 4;
    const int sources = gpus * (1 + static_cast<int>(seed % 3 == 0));
    SyntheticStatsOptions o;
    o.sources = sources;
    o.experts = 32;
    o.classes = 2;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    Rng rng(seed);
    const int spg = 32 / gpus + 1 + static_cast<int>(seed % 2);
    const Placement cur = RandomPlacement(rng, 1, 32, gpus, spg);
    PlacementTopology topo;
    topo.gpus = gpus;
    topo.gpus_per_node = 2;
    topo.alpha = seed % 4 == 1 ? 0.0 : seed % 4 == 2 ? 1.0 : 0.2;
    topo.beta = 1.0;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
    LayerRoutes routes;
    const LayerEval routed = RouteAndEvaluate(p, cur.phy2log, &routes);
    const LayerEval again = EvaluateRoutes(p, cur.phy2log, routes);
    const double tol = 1e-6 * p.total;
    EXPECT_NEAR(again.max_load, routed.max_load, tol) << "seed " << seed;
    EXPECT_NEAR(again.cross_gpu_tokens, routed.cross_gpu_tokens, tol) << "seed " << seed;
    EXPECT_NEAR(again.cross_node_tokens, routed.cross_node_tokens, tol) << "seed " << seed;
    EXPECT_NEAR(again.traffic_cost, routed.traffic_cost, tol) << "seed " << seed;
    EXPECT_EQ(again.experts_moved, routed.experts_moved);
    EXPECT_EQ(routed.experts_moved, 0);  // the current placement itself
    EXPECT_NEAR(again.objective, routed.objective, 1e-5);
    const LayerEval even = EvaluateRoutes(p, cur.phy2log, LayerRoutes{});
    EXPECT_LE(routed.objective, even.objective + 1e-9) << "seed " << seed;
    // Without routes the figures are the same.
    const LayerEval bare = RouteAndEvaluate(p, cur.phy2log, nullptr);
    EXPECT_DOUBLE_EQ(bare.objective, routed.objective);
    // Moves are counted against the current placement: a plan that swaps two experts of
    // different GPUs copies both.
    std::vector<int32_t> moved = cur.phy2log;
    for (int b = spg; b < static_cast<int>(moved.size()); ++b) {
      const int g2 = b / spg;
      bool clash = false;
      for (int k = 0; k < spg; ++k) {
        clash |= moved[g2 * spg + k] == moved[0] || moved[k] == moved[b];
      }
      if (clash) continue;
      std::swap(moved[0], moved[b]);
      EXPECT_EQ(RouteAndEvaluate(p, moved, nullptr).experts_moved, CountMoves(p, moved));
      EXPECT_EQ(CountMoves(p, moved), 2);
      ++checked;
      break;
    }
  }
  EXPECT_GT(checked, 0);
}

// RouteAndEvaluateInto appends the routes RouteAndEvaluate returns after what the list already
// holds, with the same figures, and without a list gives the same figures too.
TEST(ReplicaRouting, IntoAppendsTheSameRoutes) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SyntheticStatsOptions o;
    o.sources = seed % 2 ? 8 : 16;
    o.experts = 32;
    o.classes = 2;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    Rng rng(seed);
    const Placement cur = RandomPlacement(rng, 1, 32, 8, 5);
    const Placement plan = RandomPlacement(rng, 1, 32, 8, 5);
    PlacementTopology topo;
    topo.gpus = 8;
    topo.gpus_per_node = seed % 3 == 0 ? 0 : 4;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
    LayerRoutes expected;
    const LayerEval e = RouteAndEvaluate(p, plan.phy2log, &expected);
    const size_t n = static_cast<size_t>(p.sources) * p.experts;
    ASSERT_EQ(expected.size(), n);
    // After another layer's routes, as in Placement::source_routes.
    SourceRoutes all;
    RouteAndEvaluateInto(p, cur.phy2log, &all);
    const SourceRoutes before = all;
    const LayerEval into = RouteAndEvaluateInto(p, plan.phy2log, &all);
    const LayerEval bare = RouteAndEvaluateInto(p, plan.phy2log, nullptr);
    for (const LayerEval& f : {into, bare}) {
      EXPECT_EQ(f.objective, e.objective);
      EXPECT_EQ(f.max_load, e.max_load);
      EXPECT_EQ(f.cross_node_tokens, e.cross_node_tokens);
      EXPECT_EQ(f.experts_moved, e.experts_moved);
    }
    ASSERT_EQ(all.size(), 2 * n);
    int nonempty = 0;
    for (size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(std::ranges::equal(all[i], before[i])) << "seed " << seed << " route " << i;
      EXPECT_TRUE(std::ranges::equal(all[n + i], expected[i])) << "seed " << seed << " route " << i;
      nonempty += !all[n + i].empty();
      // Each route of a multi-replica expert sums to 1 over distinct slots holding the expert.
      if (all[n + i].empty()) continue;
      double sum = 0;
      std::vector<int32_t> slots;
      for (const SlotShare& sh : all[n + i]) {
        EXPECT_EQ(plan.phy2log[sh.slot], static_cast<int32_t>(i % p.experts));
        sum += sh.weight;
        slots.push_back(sh.slot);
      }
      std::ranges::sort(slots);
      EXPECT_EQ(std::ranges::adjacent_find(slots), slots.end());
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
    EXPECT_GT(nonempty, 0);
  }
}

// The early exit (a candidate pass stops once a lower bound on its objective shows it cannot win)
// changes nothing: on random layers (one or several nodes, one or two sources per GPU, alpha 0,
// 0.2 or = beta, current and random plans) the figures and the routes are bit for bit those of
// the full evaluation, and passes did stop. With a give-up threshold, the evaluation says "every
// pass reaches it" exactly when the full objective is above it.
TEST(ReplicaRouting, EarlyExitGivesTheFullEvaluation) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  int stopped = 0, gave_up = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Rng rng(seed);
    const int gpus = 4 + 4 * static_cast<int>(seed % 3);  // 4, 8, 12
    const int experts = 3 * gpus;
    const int spg = 3 + static_cast<int>(seed % 3);  // 0 to 2 redundant slots per GPU
    SyntheticStatsOptions o;
    o.sources = gpus * (1 + static_cast<int>(seed % 2));
    o.experts = experts;
    o.classes = 1 + static_cast<int>(seed % 4);
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    const Placement cur = RandomPlacement(rng, 1, experts, gpus, spg);
    const Placement plan = RandomPlacement(rng, 1, experts, gpus, spg);
    PlacementTopology topo;
    topo.gpus = gpus;
    topo.gpus_per_node = seed % 5 == 0 ? 0 : seed % 2 ? 2 : 4;
    topo.alpha = seed % 7 == 0 ? 0.0 : seed % 7 == 1 ? 1.0 : 0.2;
    ObjectiveWeights w;
    w.traffic = seed % 3 == 0 ? 0.25 : 2.0;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, w);
    for (const Placement* pl : {&cur, &plan}) {
      const size_t n = static_cast<size_t>(p.sources) * p.experts;
      SourceRoutes full_routes, fast_routes;
      const LayerEval full = placement_internal::RouteAndEvaluateWith(
          p, pl->phy2log, &full_routes, false, nullptr, kInf, nullptr);
      const LayerEval fast = placement_internal::RouteAndEvaluateWith(
          p, pl->phy2log, &fast_routes, true, &stopped, kInf, nullptr);
      EXPECT_EQ(fast.objective, full.objective) << "seed " << seed;
      EXPECT_EQ(fast.max_load, full.max_load) << "seed " << seed;
      EXPECT_EQ(fast.traffic_cost, full.traffic_cost) << "seed " << seed;
      EXPECT_EQ(fast.cross_gpu_tokens, full.cross_gpu_tokens) << "seed " << seed;
      EXPECT_EQ(fast.cross_node_tokens, full.cross_node_tokens) << "seed " << seed;
      EXPECT_EQ(fast.experts_moved, full.experts_moved) << "seed " << seed;
      ASSERT_EQ(fast_routes.size(), n);
      EXPECT_EQ(fast_routes, full_routes) << "seed " << seed;
      // Without routes, the same figures.
      const LayerEval bare = RouteAndEvaluateInto(p, pl->phy2log, nullptr);
      EXPECT_EQ(bare.objective, full.objective) << "seed " << seed;
      // A threshold below the objective: every pass gives up; above it: the best pass survives.
      for (const double f : {0.5, 0.99, 1.01, 2.0}) {
        const double give_up = f * full.objective;
        bool exact = false;
        const LayerEval r = placement_internal::RouteAndEvaluateWith(p, pl->phy2log, nullptr, true,
                                                                     nullptr, give_up, &exact);
        if (f < 1) {
          EXPECT_EQ(r.objective, kInf) << "seed " << seed << " factor " << f;
          EXPECT_EQ(r.max_load, kInf);
          EXPECT_FALSE(exact);
          ++gave_up;
        } else {
          // Exact whenever it says so (here always: no pass is within 1e-12 of give_up).
          EXPECT_TRUE(exact) << "seed " << seed << " factor " << f;
          EXPECT_EQ(r.objective, full.objective) << "seed " << seed << " factor " << f;
          EXPECT_EQ(r.max_load, full.max_load);
          EXPECT_EQ(r.traffic_cost, full.traffic_cost);
        }
      }
    }
  }
  EXPECT_GT(stopped, 0);
  EXPECT_EQ(gave_up, 240);
}

// At DeepSeek-V3's shape (256 experts, 64 sources, 8 GPUs per node), where the early exit's
// bounds (the demands still to come at their nearest replicas, the balanced pass's floor on the
// peak) stop most candidate passes: the same figures and routes as running every pass.
TEST(ReplicaRouting, EarlyExitGivesTheFullEvaluationAtScale) {
  int stopped = 0;
  for (const auto& [gpus, spg] : {std::pair{64, 5}, std::pair{32, 9}}) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SyntheticStatsOptions o;
      o.sources = 64;
      o.experts = 256;
      o.classes = 8;
      o.zipf_s = seed == 3 ? 1.0 : 0.8;
      o.seed = seed;
      const SourceExpertCounts stats = SyntheticStats(o).Next();
      Rng rng(seed);
      const Placement pl = RandomPlacement(rng, 1, 256, gpus, spg);
      PlacementTopology topo;
      topo.gpus = gpus;
      topo.gpus_per_node = 8;
      const LayerProblem p = MakeLayerProblem(stats, 0, pl, topo, ObjectiveWeights{1, 1, 0.0001});
      const size_t n = static_cast<size_t>(p.sources) * p.experts;
      SourceRoutes full_routes, fast_routes;
      const LayerEval full = placement_internal::RouteAndEvaluateWith(
          p, pl.phy2log, &full_routes, false, nullptr, std::numeric_limits<double>::infinity(),
          nullptr);
      const LayerEval fast = placement_internal::RouteAndEvaluateWith(
          p, pl.phy2log, &fast_routes, true, &stopped, std::numeric_limits<double>::infinity(),
          nullptr);
      EXPECT_EQ(fast.objective, full.objective) << gpus << " GPUs, seed " << seed;
      EXPECT_EQ(fast.max_load, full.max_load);
      EXPECT_EQ(fast.traffic_cost, full.traffic_cost);
      EXPECT_EQ(fast.cross_node_tokens, full.cross_node_tokens);
      ASSERT_EQ(fast_routes.size(), n);
      EXPECT_EQ(fast_routes, full_routes);
    }
  }
  EXPECT_GE(stopped, 6);  // the early exit did stop passes (about two per layer)
}

}  // namespace
}  // namespace gimbal
