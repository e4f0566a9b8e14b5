#include "policy/placement/gimbal_placement.h"

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "placement/synthetic_stats.h"
#include "policy/placement/placement_policy.h"
#include "policy/placement/test_instances.h"

namespace gimbal {
namespace {

struct Instance {
  SourceExpertCounts stats;
  Placement current;
  PlacementTopology topology;
};

Instance MakeInstance(uint64_t seed, int layers, int experts, int gpus, int gpus_per_node,
                      int slots_per_gpu, int sources) {
  Rng rng(seed);
  SyntheticStatsOptions o;
  o.layers = layers;
  o.sources = sources;
  o.experts = experts;
  o.classes = std::max(1, gpus / std::max(1, gpus_per_node));
  o.seed = seed;
  Instance in;
  in.stats = SyntheticStats(o).Next();
  in.current = RandomPlacement(rng, layers, experts, gpus, slots_per_gpu);
  in.topology.gpus = gpus;
  in.topology.gpus_per_node = gpus_per_node;
  return in;
}

// Slot counts, every expert placed, maps consistent, routes valid.
void ExpectFeasible(const Placement& plan, const Instance& in) {
  ASSERT_TRUE(plan.Validate().ok()) << plan.Validate().message();
  EXPECT_EQ(plan.layers, in.current.layers);
  EXPECT_EQ(plan.gpus, in.current.gpus);
  EXPECT_EQ(plan.slots_per_gpu, in.current.slots_per_gpu);
  EXPECT_EQ(plan.phy2log.size(), in.current.phy2log.size());
  const auto l2p = plan.Log2Phy();
  for (int l = 0; l < plan.layers; ++l) {
    int total = 0;
    for (int x = 0; x < plan.experts; ++x) {
      EXPECT_FALSE(l2p[l][x].empty());
      for (int32_t s : l2p[l][x]) EXPECT_EQ(plan.Expert(l, s), x);
      total += static_cast<int>(l2p[l][x].size());
    }
    EXPECT_EQ(total, plan.slots());
  }
}

TEST(GimbalPlacement, EveryPlanIsFeasible) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const int gpus = seed % 2 ? 4 : 8;
    Instance in = MakeInstance(seed, 2, 32, gpus, 2, 32 / gpus + 1 + static_cast<int>(seed % 3),
                               gpus * (1 + static_cast<int>(seed % 2)));
    for (const char* name : {"gimbal", "eplb"}) {
      auto policy = MakePlacementPolicy(name, Params());
      ASSERT_TRUE(policy.ok());
      Result<Placement> plan = (*policy)->Plan(in.stats, in.current, in.topology);
      ASSERT_TRUE(plan.ok()) << plan.status().message();
      ExpectFeasible(*plan, in);
    }
  }
}

TEST(GimbalPlacement, NeverWorseThanTheCurrentPlacementByItsOwnObjective) {
  GimbalPlacementConfig cfg;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Instance in = MakeInstance(seed, 1, 16, 4, 2, 5, 8);
    cfg.max_moves_per_layer = static_cast<int>(seed % 5) - 1;  // -1 (unlimited) .. 3
    const LayerProblem p = MakeLayerProblem(in.stats, 0, in.current, in.topology, cfg.weights);
    const LayerPlan plan = PlanLayerGimbal(p, cfg);
    EXPECT_LE(plan.eval.objective, plan.current_eval.objective + 1e-9) << "seed " << seed;
    // The reported objective is the objective of the returned routes.
    const LayerEval again = EvaluateRoutes(p, plan.phy2log, plan.routes);
    EXPECT_NEAR(again.objective, plan.eval.objective, 1e-5);
  }
}

TEST(GimbalPlacement, MigrationBudgetHolds) {
  for (int budget : {0, 1, 2, 5, 10}) {
    GimbalPlacementConfig cfg;
    cfg.max_moves_per_layer = budget;
    cfg.min_gain = 0;
    Instance in = MakeInstance(100 + budget, 3, 64, 8, 4, 10, 8);
    Result<Placement> plan = PlanGimbal(in.stats, in.current, in.topology, cfg);
    ASSERT_TRUE(plan.ok());
    Result<PlacementQuality> q =
        EvaluatePlacement(in.stats, *plan, in.current, in.topology, cfg.weights);
    ASSERT_TRUE(q.ok());
    for (const LayerEval& e : q->layers) EXPECT_LE(e.experts_moved, budget);
    if (budget == 0) {
      EXPECT_EQ(plan->phy2log, in.current.phy2log);
    }
  }
}

TEST(GimbalPlacement, MovesAnExpertNextToItsOnlySource) {
  // 2 GPUs on 2 nodes, one slot each... two experts, each used only by the source on the other GPU.
  PlacementTopology topo;
  topo.gpus = 2;
  topo.gpus_per_node = 1;
  SourceExpertCounts stats = SourceExpertCounts::Zeros(1, 2, 2);
  stats.At(0, 0, 1) = 100;  // source 0 (GPU 0) uses expert 1, held by GPU 1
  stats.At(0, 1, 0) = 100;
  Placement current = Placement::Contiguous(1, 2, 2);
  GimbalPlacementConfig cfg;
  Result<Placement> plan = PlanGimbal(stats, current, topo, cfg);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->phy2log, (std::vector<int32_t>{1, 0}));
  Result<PlacementQuality> q = EvaluatePlacement(stats, *plan, current, topo, cfg.weights);
  ASSERT_TRUE(q.ok());
  EXPECT_DOUBLE_EQ(q->cross_node_fraction, 0);
  EXPECT_EQ(q->experts_moved, 2);
}

TEST(GimbalPlacement, HysteresisKeepsTheCurrentPlanWhenTheGainIsSmall) {
  Instance in = MakeInstance(5, 1, 16, 4, 2, 5, 8);
  GimbalPlacementConfig cfg;
  cfg.min_gain = 10;  // demand a 1000% gain: nothing qualifies
  Result<Placement> plan = PlanGimbal(in.stats, in.current, in.topology, cfg);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->phy2log, in.current.phy2log);
  // Fresh routes for the kept placement, one per layer, source and expert.
  EXPECT_EQ(plan->source_routes.size(),
            static_cast<size_t>(in.stats.layers) * in.stats.sources * in.stats.experts);
}

// A weight so large that every routing pass of a layer scores +infinity: the layer still gets its
// routes (the even split), so the plan keeps the shape Validate and the readers expect. Layer 0
// has no tokens (finite objectives), layer 1 has.
TEST(GimbalPlacement, ALayerWhoseObjectiveOverflowsStillHasItsRoutes) {
  Instance in = MakeInstance(3, 2, 16, 4, 2, 5, 8);
  for (int s = 0; s < in.stats.sources; ++s) {
    for (int x = 0; x < in.stats.experts; ++x) in.stats.At(0, s, x) = 0;
  }
  GimbalPlacementConfig cfg;
  cfg.weights.load = std::numeric_limits<double>::max();  // times 4 GPUs: +infinity
  const size_t per_layer = static_cast<size_t>(in.stats.sources) * in.stats.experts;
  const Result<Placement> plan = PlanGimbal(in.stats, in.current, in.topology, cfg);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->source_routes.size(), 2 * per_layer);
  EXPECT_TRUE(plan->Validate().ok()) << plan->Validate().message();
  for (size_t i = per_layer; i < 2 * per_layer; ++i) EXPECT_TRUE(plan->source_routes[i].empty());
  const LayerPlan one =
      PlanLayerGimbal(MakeLayerProblem(in.stats, 1, in.current, in.topology, cfg.weights), cfg);
  EXPECT_EQ(one.routes.size(), per_layer);
  LayerRoutes routes;
  RouteAndEvaluate(MakeLayerProblem(in.stats, 1, in.current, in.topology, cfg.weights),
                   in.current.phy2log, &routes);
  EXPECT_EQ(routes.size(), per_layer);
}

TEST(GimbalPlacement, RoutesPreferTheLocalReplica) {
  // Expert 0 has a replica on each GPU; each source's tokens stay on its own GPU.
  PlacementTopology topo;
  topo.gpus = 2;
  topo.gpus_per_node = 1;
  SourceExpertCounts stats = SourceExpertCounts::Zeros(1, 2, 2);
  stats.At(0, 0, 0) = 50;
  stats.At(0, 1, 0) = 50;
  stats.At(0, 0, 1) = 1;
  Placement current;
  current.layers = 1;
  current.experts = 2;
  current.gpus = 2;
  current.slots_per_gpu = 2;
  current.phy2log = {0, 1, 0, 1};
  GimbalPlacementConfig cfg;
  Result<Placement> plan = PlanGimbal(stats, current, topo, cfg);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->sources, 2);
  const auto& r0 = plan->source_routes[0 * 2 + 0];
  const auto& r1 = plan->source_routes[1 * 2 + 0];
  ASSERT_EQ(r0.size(), 1u);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(plan->GpuOfSlot(r0[0].slot), 0);
  EXPECT_EQ(plan->GpuOfSlot(r1[0].slot), 1);
}

TEST(GimbalPlacement, RoutingIsNeverWorseThanTheEvenSplit) {
  // The balanced routing starts from the even split and only moves tokens to nearer replicas
  // below a cap at least the even split's peak, so the chosen routing's objective is at most the
  // even split's.
  GimbalPlacementConfig cfg;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Instance in = MakeInstance(seed, 1, 32, 8, 4, 5 + static_cast<int>(seed % 3), 16);
    const LayerProblem p = MakeLayerProblem(in.stats, 0, in.current, in.topology, cfg.weights);
    LayerRoutes routes;
    const LayerEval routed = RouteAndEvaluate(p, in.current.phy2log, &routes);
    const LayerEval even = EvaluateRoutes(p, in.current.phy2log, LayerRoutes{});
    EXPECT_LE(routed.objective, even.objective + 1e-9) << "seed " << seed;
    EXPECT_NEAR(EvaluateRoutes(p, in.current.phy2log, routes).objective, routed.objective, 1e-5);
  }
}

TEST(GimbalPlacement, RepairBalancesTheHotGpuWithinItsNode) {
  // One node, 2 GPUs x 4 slots; the four hot experts all sit on GPU 0. Only the repair runs
  // (no locality steps, no refinement); it must reach the exact balance {10, 10, 1, 1} per GPU.
  PlacementTopology topo;
  topo.gpus = 2;
  topo.gpus_per_node = 2;
  SourceExpertCounts stats = SourceExpertCounts::Zeros(1, 2, 8);
  for (int x = 0; x < 8; ++x) {
    stats.At(0, 0, x) = x < 4 ? 5 : 0.5;
    stats.At(0, 1, x) = x < 4 ? 5 : 0.5;
  }
  Placement current = Placement::Contiguous(1, 8, 2);
  GimbalPlacementConfig cfg;
  cfg.max_moves_per_layer = -1;
  cfg.min_gain = 0;
  cfg.search_evals = 0;
  cfg.refine_work = 0;
  cfg.node_slack = -1;
  cfg.balance_target = 0;
  const LayerProblem p = MakeLayerProblem(stats, 0, current, topo, cfg.weights);
  const LayerPlan plan = PlanLayerGimbal(p, cfg);
  const LayerEval even = EvaluateRoutes(p, plan.phy2log, LayerRoutes{});
  EXPECT_DOUBLE_EQ(even.max_load, 22);
  EXPECT_EQ(plan.eval.experts_moved, 4);  // two swaps
}

TEST(GimbalPlacement, RepairNeverRaisesThePeakAndKeepsTheBudget) {
  // With only the repair running, the even-split peak of the plan is at most the current one's,
  // and the copies stay within the budget.
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Instance in = MakeInstance(seed, 1, 32, 8, 4, 5, 16);
    GimbalPlacementConfig cfg;
    cfg.max_moves_per_layer = static_cast<int>(seed % 4) * 3;  // 0, 3, 6, 9
    cfg.min_gain = 0;
    cfg.search_evals = 0;
    cfg.refine_work = 0;
    cfg.node_slack = -1;
    cfg.count_slack = 1e9;  // no replica count changes
    const LayerProblem p = MakeLayerProblem(in.stats, 0, in.current, in.topology, cfg.weights);
    const LayerPlan plan = PlanLayerGimbal(p, cfg);
    const double before = EvaluateRoutes(p, in.current.phy2log, LayerRoutes{}).max_load;
    const LayerEval after = EvaluateRoutes(p, plan.phy2log, LayerRoutes{});
    EXPECT_LE(after.max_load, before + 1e-9) << "seed " << seed;
    EXPECT_LE(after.experts_moved, cfg.max_moves_per_layer) << "seed " << seed;
  }
}

// PlanGimbal writes each layer's routes straight into the placement's source_routes; layer by
// layer, its plan and routes are PlanLayerGimbal's. (PlanGimbal's hysteresis may give up on the
// current placement's routing early, PlanLayerGimbal's evaluates it in full: the last two runs
// plan again from the first run's plan with the default min_gain, where layers keep their
// placement or change.)
TEST(GimbalPlacement, AllLayersAreTheLayerPlans) {
  Instance in = MakeInstance(9, 3, 32, 8, 4, 5, 16);
  GimbalPlacementConfig cfg;
  const double default_gain = cfg.min_gain;
  int kept = 0, changed = 0, kept_later = 0, changed_later = 0;
  for (int run = 0; run < 6; ++run) {
    const bool routes = run % 2 == 0;
    cfg.emit_routes = routes;
    // The second two: every layer keeps its placement.
    cfg.min_gain = run < 2 ? 0.0 : run < 4 ? 0.9 : default_gain;
    if (run == 4) {
      const Result<Placement> first = PlanGimbal(in.stats, in.current, in.topology, cfg);
      ASSERT_TRUE(first.ok());
      in.current = *first;
      in.current.source_routes.clear();
      in.current.sources = 0;
      // Statistics of another window, so that some layers change.
      for (int l = 1; l < 3; ++l) {
        for (int s = 0; s < in.stats.sources; ++s) {
          for (int x = 0; x < in.stats.experts; x += 3) in.stats.At(l, s, x) *= 1.5;
        }
      }
    }
    const Result<Placement> plan = PlanGimbal(in.stats, in.current, in.topology, cfg);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    ExpectFeasible(*plan, in);
    const size_t per_layer = static_cast<size_t>(in.stats.sources) * in.stats.experts;
    EXPECT_EQ(plan->source_routes.size(), routes ? 3 * per_layer : 0);
    for (int l = 0; l < 3; ++l) {
      const LayerPlan one =
          PlanLayerGimbal(MakeLayerProblem(in.stats, l, in.current, in.topology, cfg.weights), cfg);
      for (int slot = 0; slot < plan->slots(); ++slot) {
        EXPECT_EQ(plan->Expert(l, slot), one.phy2log[slot]);
      }
      (one.kept_current ? kept : changed)++;
      if (run >= 4) (one.kept_current ? kept_later : changed_later)++;
      if (!routes) continue;
      ASSERT_EQ(one.routes.size(), per_layer);
      for (size_t i = 0; i < per_layer; ++i) {
        const std::span<const SlotShare> got = plan->source_routes[l * per_layer + i];
        ASSERT_EQ(got.size(), one.routes[i].size());
        for (size_t k = 0; k < got.size(); ++k) {
          EXPECT_EQ(got[k].slot, one.routes[i][k].slot);
          EXPECT_EQ(got[k].weight, one.routes[i][k].weight);
        }
      }
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(changed, 0);
  EXPECT_GT(kept_later, 0);
  EXPECT_GT(changed_later, 0);
}

// PlanGimbal checks the count values layer by layer as it reads them (not in a pass before
// planning), and must still fail exactly as CheckPlacementInputs does: the statistics' error
// first, naming the first bad count, whatever else is wrong.
TEST(GimbalPlacement, BadInputsGiveCheckPlacementInputsErrors) {
  const GimbalPlacementConfig cfg;
  auto same_error = [&](const Instance& in, const std::string& what) {
    const Status want = CheckPlacementInputs(in.stats, in.current, in.topology);
    ASSERT_FALSE(want.ok()) << what;
    Result<Placement> got = PlanGimbal(in.stats, in.current, in.topology, cfg);
    ASSERT_FALSE(got.ok()) << what;
    EXPECT_EQ(got.status().message(), want.message()) << what;
  };
  const Instance good = MakeInstance(3, 3, 16, 4, 2, 5, 8);
  ASSERT_TRUE(PlanGimbal(good.stats, good.current, good.topology, cfg).ok());
  const double bad_values[] = {-1.0, std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity(), 2 * kMaxRoutingCount};
  for (const double v : bad_values) {
    for (const int layer : {0, 2}) {
      Instance in = good;
      in.stats.counts[in.stats.Index(layer, 5, 7)] = v;
      in.stats.counts[in.stats.Index(layer, 6, 1)] = -2.0;  // a later bad count: not named
      const std::string what =
          std::string("count ") + std::to_string(v) + " in layer " + std::to_string(layer);
      same_error(in, what);
      in.topology.gpus_per_node = 3;  // and a bad topology: the count is still named
      same_error(in, what + " and a bad topology");
    }
  }
  Instance in = good;
  in.topology.alpha = 2 * in.topology.beta;
  same_error(in, "alpha above beta");
  in = good;
  in.current.gpus = 8;
  same_error(in, "current placement of another shape");
  in = good;
  in.stats.counts.pop_back();
  same_error(in, "counts of the wrong size");
  in = good;
  in.stats.counts[in.stats.Index(1, 0, 0)] = -0.0;  // -0.0 is a valid count
  EXPECT_TRUE(PlanGimbal(in.stats, in.current, in.topology, cfg).ok());
}

TEST(GimbalPlacement, ConfigComesFromParamsAndRejectsUnknownKeys) {
  Params p;
  p.Set("traffic_weight", "0.5");
  p.Set("max_moves_per_layer", "4");
  p.Set("balance_target", "0.05");
  p.Set("repair_moves", "2");
  p.Set("node_slack", "0.1");
  p.Set("gpu_slack", "0.2");
  Result<GimbalPlacementConfig> c = GimbalPlacementConfig::FromParams(p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->weights.traffic, 0.5);
  EXPECT_EQ(c->max_moves_per_layer, 4);
  EXPECT_EQ(c->balance_target, 0.05);
  EXPECT_EQ(c->repair_moves, 2);
  EXPECT_EQ(c->node_slack, 0.1);
  EXPECT_EQ(c->gpu_slack, 0.2);
  p.Set("trafic_weight", "1");
  EXPECT_FALSE(GimbalPlacementConfig::FromParams(p).ok());
  Result<std::unique_ptr<PlacementPolicy>> bad = MakePlacementPolicy("nope", Params());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("known: eplb, exact, gimbal"), std::string::npos);
}

// Counts of 1e-310 (a subnormal total whose inverse overflows) or a huge migration weight made
// every repair candidate's score infinite, and the repair applied a null candidate.
TEST(GimbalPlacement, ScoresThatOverflowPlanWithoutCrashing) {
  Instance in = MakeInstance(3, 2, 16, 4, 2, 5, 8);
  for (double& c : in.stats.counts) c = 5e-310;
  Result<Placement> plan = PlanGimbal(in.stats, in.current, in.topology, GimbalPlacementConfig{});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(plan->Validate().ok()) << plan->Validate().message();
  Instance skewed = MakeInstance(3, 2, 16, 4, 2, 5, 8);
  GimbalPlacementConfig huge;
  huge.weights.migration = 1e308;  // the struct takes it; FromParams does not (below)
  plan = PlanGimbal(skewed.stats, skewed.current, skewed.topology, huge);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(plan->Validate().ok());
}

TEST(GimbalPlacement, ParamsPastTheirBoundsAreRefusedNamingThem) {
  for (const auto& [key, value, expect] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"migration_weight", "1e308", "migration_weight must be in [0, 1e+06]"},
           {"load_weight", "nan", "'load_weight' expects a number"},
           {"refine_work", "9223372036854775807", "refine_work at most 100000000"},
           {"search_evals", "2000000", "search_evals must be at most 1000000"}}) {
    Params p;
    p.Set(key, value);
    Result<GimbalPlacementConfig> c = GimbalPlacementConfig::FromParams(p);
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_NE(c.status().message().find(expect), std::string::npos) << c.status().message();
  }
}

}  // namespace
}  // namespace gimbal
