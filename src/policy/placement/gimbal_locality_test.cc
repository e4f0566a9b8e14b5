// Tests of the replica steps of Gimbal's heuristic: replicas re-targeted for node locality
// (step 1b), replica count changes that must lower the surrogate objective, and the surrogate's
// replace evaluation.
#include <gtest/gtest.h>

#include "placement/synthetic_stats.h"
#include "policy/placement/gimbal_placement.h"
#include "policy/placement/search_state.h"
#include "policy/placement/test_instances.h"

namespace gimbal {
namespace {

using placement_internal::SearchState;

// 4 GPUs on 2 nodes, 3 slots each, 4 sources (one per GPU), 8 experts. Expert 0 is used by
// source 0 (node 0) and source 2 (node 1) but only held by GPU 0; expert 7 is nearly unused and
// has a spare replica on GPU 2 (node 1).
struct TwoNodeCase {
  SourceExpertCounts stats = SourceExpertCounts::Zeros(1, 4, 8);
  Placement current;
  PlacementTopology topo;
  TwoNodeCase() {
    topo.gpus = 4;
    topo.gpus_per_node = 2;
    current.layers = 1;
    current.experts = 8;
    current.gpus = 4;
    current.slots_per_gpu = 3;
    current.phy2log = {0, 1, 2, 3, 4, 7, 5, 6, 7, 1, 3, 5};
    stats.At(0, 0, 0) = 100;
    stats.At(0, 2, 0) = 100;
    for (int x = 1; x <= 6; ++x) {
      for (int slot = 0; slot < 12; ++slot) {
        if (current.phy2log[slot] == x) {
          stats.At(0, slot / 3, x) = 20;  // from the source of its first GPU
          break;
        }
      }
    }
    stats.At(0, 1, 7) = 2;
  }
  // Only the replica steps: counts and, when asked, locality replicas.
  static GimbalPlacementConfig Config(int locality_replicas) {
    GimbalPlacementConfig cfg;
    cfg.count_slack = 1e9;  // no replica count change
    cfg.locality_replicas = locality_replicas;
    cfg.node_slack = -1;
    cfg.search_evals = 0;
    cfg.balance_target = -1;
    cfg.refine_work = 0;
    cfg.min_gain = 0;
    return cfg;
  }
};

TEST(GimbalLocality, ReplicaGoesToTheSecondNodeWithDemand) {
  TwoNodeCase c;
  const LayerProblem p =
      MakeLayerProblem(c.stats, 0, c.current, c.topo, GimbalPlacementConfig{}.weights);
  const LayerPlan with = PlanLayerGimbal(p, TwoNodeCase::Config(4));
  const LayerPlan without = PlanLayerGimbal(p, TwoNodeCase::Config(0));
  EXPECT_EQ(without.phy2log, c.current.phy2log);
  // Expert 0 gained a replica on node 1, in the slot expert 7 could spare.
  EXPECT_EQ(with.phy2log[8], 0);
  EXPECT_EQ(with.eval.experts_moved, 1);
  EXPECT_LT(with.eval.cross_node_tokens, without.eval.cross_node_tokens - 50);
  EXPECT_LT(with.eval.max_load, without.eval.max_load);
  EXPECT_LE(with.eval.objective, with.current_eval.objective + 1e-9);
  // The plan is feasible: every expert placed, no expert twice on a GPU.
  Placement plan = c.current;
  plan.phy2log = with.phy2log;
  EXPECT_TRUE(plan.Validate().ok());
  const auto l2p = plan.Log2Phy();
  for (int x = 0; x < 8; ++x) EXPECT_FALSE(l2p[0][x].empty()) << "expert " << x;
  for (int g = 0; g < 4; ++g) {
    for (int i = 0; i < 3; ++i) {
      for (int j = i + 1; j < 3; ++j) EXPECT_NE(plan.phy2log[g * 3 + i], plan.phy2log[g * 3 + j]);
    }
  }
}

TEST(GimbalLocality, RespectsTheMigrationBudget) {
  TwoNodeCase c;
  const LayerProblem p = MakeLayerProblem(c.stats, 0, c.current, c.topo, {});
  GimbalPlacementConfig cfg = TwoNodeCase::Config(4);
  cfg.max_moves_per_layer = 0;
  const LayerPlan plan = PlanLayerGimbal(p, cfg);
  EXPECT_EQ(plan.phy2log, c.current.phy2log);
  EXPECT_EQ(plan.eval.experts_moved, 0);
}

TEST(GimbalLocality, DoesNotTakeAReplicaTheBalanceNeeds) {
  // 9 experts; node 1 (GPUs 2, 3) holds one spare replica only, expert 7's (its other replica is
  // on GPU 1). Expert 0 (GPU 0) is used by sources 0 and 2. Expert 7 carries 150 tokens: taking
  // its replica would still lower the peak, but after losing it expert 7's load would be above
  // locality_spare_load x the mean slot load (2.5 x 470 / 12 = 98), so it keeps both.
  PlacementTopology topo;
  topo.gpus = 4;
  topo.gpus_per_node = 2;
  Placement cur;
  cur.layers = 1;
  cur.experts = 9;
  cur.gpus = 4;
  cur.slots_per_gpu = 3;
  cur.phy2log = {0, 1, 2, 1, 2, 7, 3, 4, 7, 5, 6, 8};
  SourceExpertCounts stats = SourceExpertCounts::Zeros(1, 4, 9);
  stats.At(0, 0, 0) = 100;
  stats.At(0, 2, 0) = 100;
  for (int x : {1, 2}) stats.At(0, 0, x) = 20;
  for (int x : {3, 4}) stats.At(0, 2, x) = 20;
  for (int x : {5, 6, 8}) stats.At(0, 3, x) = 10;
  stats.At(0, 1, 7) = 150;
  const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, GimbalPlacementConfig{}.weights);
  GimbalPlacementConfig cfg = TwoNodeCase::Config(4);
  cfg.locality_spare_load = 2.5;
  const LayerPlan kept = PlanLayerGimbal(p, cfg);
  EXPECT_EQ(kept.phy2log, cur.phy2log);
  // Without the rule that replica is taken for expert 0.
  cfg.locality_spare_load = 100;
  const LayerPlan taken = PlanLayerGimbal(p, cfg);
  EXPECT_EQ(taken.phy2log[8], 0);
  EXPECT_LT(taken.eval.cross_node_tokens, kept.eval.cross_node_tokens);
}

// With locality replicas on, a whole plan is never worse by the planner's own objective than the
// current placement, keeps the budget, and on layers small enough for the exact refinement it is
// never worse than the plan without them (both are searched, the better kept).
TEST(GimbalLocality, NeverWorseThanWithoutOnSmallLayers) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = 8;
    o.experts = 16;
    o.classes = 2;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    const Placement cur = RandomPlacement(rng, 1, 16, 4, 5 + static_cast<int>(seed % 2));
    PlacementTopology topo;
    topo.gpus = 4;
    topo.gpus_per_node = 2;
    GimbalPlacementConfig on;
    on.min_gain = 0;
    on.max_moves_per_layer = static_cast<int>(seed % 4) * 3 - 1;  // -1 (unlimited), 2, 5, 8
    GimbalPlacementConfig off = on;
    off.locality_replicas = 0;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, on.weights);
    const LayerPlan a = PlanLayerGimbal(p, on);
    const LayerPlan b = PlanLayerGimbal(p, off);
    EXPECT_LE(a.eval.objective, b.eval.objective + 1e-9) << "seed " << seed;
    EXPECT_LE(a.eval.objective, a.current_eval.objective + 1e-9) << "seed " << seed;
    if (on.max_moves_per_layer >= 0) {
      EXPECT_LE(a.eval.experts_moved, on.max_moves_per_layer);
    }
  }
}

// On DeepSeek-sized layers (no refinement) the plans with locality replicas stay feasible and
// within budget, and on class-skewed statistics they cut cross-node tokens.
TEST(GimbalLocality, CutsCrossNodeTokensOnLargeLayers) {
  SyntheticStatsOptions o;
  o.layers = 4;
  o.sources = 64;
  o.experts = 256;
  o.classes = 8;
  o.zipf_s = 0.8;
  o.dominant_share = 0.8;
  o.seed = 11;
  SyntheticStats gen(o);
  PlacementTopology topo;
  topo.gpus = 64;
  topo.gpus_per_node = 8;
  GimbalPlacementConfig on;
  GimbalPlacementConfig off = on;
  off.locality_replicas = 0;
  Placement cur_on = Placement::Contiguous(4, 256, 64, 1), cur_off = cur_on;
  double xn_on = 0, xn_off = 0;
  for (int r = 0; r < 4; ++r) {
    const SourceExpertCounts stats = gen.Next();
    Result<Placement> a = PlanGimbal(stats, cur_on, topo, on);
    Result<Placement> b = PlanGimbal(stats, cur_off, topo, off);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(a->Validate().ok()) << a->Validate().message();
    Result<PlacementQuality> qa = EvaluatePlacement(stats, *a, cur_on, topo, on.weights);
    Result<PlacementQuality> qb = EvaluatePlacement(stats, *b, cur_off, topo, on.weights);
    ASSERT_TRUE(qa.ok() && qb.ok());
    for (const LayerEval& e : qa->layers) EXPECT_LE(e.experts_moved, on.max_moves_per_layer);
    xn_on = qa->cross_node_fraction;
    xn_off = qb->cross_node_fraction;
    cur_on = *std::move(a);
    cur_off = *std::move(b);
  }
  EXPECT_LT(xn_on, xn_off);
}

// Count changes must lower the surrogate objective: with only the count step, the plan's
// surrogate objective is at most the current placement's.
TEST(GimbalLocality, CountChangesLowerTheSurrogate) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = 16;
    o.experts = 32;
    o.classes = 4;
    o.zipf_s = 1.2;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    const Placement cur = RandomPlacement(rng, 1, 32, 8, 6);
    PlacementTopology topo;
    topo.gpus = 8;
    topo.gpus_per_node = 4;
    GimbalPlacementConfig cfg = TwoNodeCase::Config(0);
    cfg.count_slack = 0.05;
    cfg.emit_routes = false;
    cfg.min_gain = -1e9;  // keep the searched plan, whatever its routed objective
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, cfg.weights);
    const LayerPlan plan = PlanLayerGimbal(p, cfg);
    const SearchState before(p, p.current), after(p, plan.phy2log);
    EXPECT_LE(after.Objective(), before.Objective() + 1e-12) << "seed " << seed;
  }
}

// The surrogate's replace evaluation agrees with replacing and recomputing.
TEST(GimbalLocality, ReplaceValueMatchesReplace) {
  Rng rng(7);
  SyntheticStatsOptions o;
  o.sources = 16;
  o.experts = 32;
  o.classes = 4;
  o.seed = 7;
  const SourceExpertCounts stats = SyntheticStats(o).Next();
  const Placement cur = RandomPlacement(rng, 1, 32, 8, 6);
  PlacementTopology topo;
  topo.gpus = 8;
  topo.gpus_per_node = 4;
  const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
  SearchState st(p, p.current);
  int checked = 0;
  for (int slot = 0; slot < p.slots(); ++slot) {
    const int c = st.map()[slot];
    if (st.replicas(c) < 2) continue;
    for (int x = 0; x < p.experts; ++x) {
      if (x == c || st.count(x, st.Gpu(slot)) > 0) continue;
      const SearchState::ReplaceEval v = st.ReplaceValue(slot, x);
      SearchState copy = st;
      copy.Replace(slot, x);
      EXPECT_NEAR(v.objective, copy.Objective(), 1e-9);
      EXPECT_EQ(v.moves, copy.moves());
      EXPECT_NEAR(v.peak, copy.gpu_load(copy.max_gpu()), 1e-6 * p.total);
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

// The search state keeps per-expert traffic, GPU loads and replica counts up to date through
// swaps and replacements: after a run of them, every expert's traffic is bit for bit what a state
// built from scratch on the same map computes (each is a fresh sum in source order), the counts
// and copies are equal, and loads and objective agree up to rounding. Traffic2 is two Traffic
// calls.
TEST(GimbalLocality, IncrementalStateMatchesAFreshOne) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = seed % 2 ? 8 : 16;  // one or two sources per GPU
    o.experts = 24;
    o.classes = 2;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    const Placement cur = RandomPlacement(rng, 1, 24, 8, 4);
    PlacementTopology topo;
    topo.gpus = 8;
    topo.gpus_per_node = 4;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
    SearchState st(p, p.current);
    int applied = 0;
    for (int step = 0; step < 60; ++step) {
      const int a = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.slots())));
      const int b = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.slots())));
      if (step % 3 == 0) {
        const int x = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.experts)));
        if (st.replicas(st.map()[a]) < 2 || st.count(x, st.Gpu(a)) > 0) continue;
        st.Replace(a, x);
      } else {
        if (!st.SwapValid(a, b)) continue;
        const int x1 = st.map()[a], x2 = st.map()[b], g1 = st.Gpu(a), g2 = st.Gpu(b);
        const auto [t1, t2] = st.Traffic2(x1, g1, g2, x2, g2, g1);
        EXPECT_EQ(t1, st.Traffic(x1, g1, g2));
        EXPECT_EQ(t2, st.Traffic(x2, g2, g1));
        st.ApplySwap(a, b);
      }
      ++applied;
    }
    EXPECT_GT(applied, 20);
    const SearchState fresh(p, st.map());
    for (int x = 0; x < p.experts; ++x) {
      EXPECT_EQ(st.traffic(x), fresh.traffic(x)) << "seed " << seed << " expert " << x;
      EXPECT_EQ(st.replicas(x), fresh.replicas(x));
      for (int g = 0; g < p.gpus; ++g) EXPECT_EQ(st.count(x, g), fresh.count(x, g));
      for (int n = 0; n < p.nodes; ++n) EXPECT_EQ(st.node_count(x, n), fresh.node_count(x, n));
    }
    for (int g = 0; g < p.gpus; ++g) {
      EXPECT_NEAR(st.gpu_load(g), fresh.gpu_load(g), 1e-9 * p.total);
    }
    EXPECT_EQ(st.moves(), fresh.moves());
    EXPECT_EQ(st.moves(), CountMoves(p, st.map()));
    EXPECT_NEAR(st.Objective(), fresh.Objective(), 1e-9);
  }
}

// The surrogate's traffic of an expert, with a replica removed from one GPU and added on another,
// is bit for bit the sum over sources, in source order, of the tokens times the cost of the
// nearest remaining replica (0 on the source's GPU, alpha on its node, else beta), both for nodes
// of consecutive GPUs (SearchState's block-wise cost table) and for nodes that interleave GPUs
// (the general one).
TEST(GimbalLocality, TrafficIsTheSumOverSourcesOfTheNearestCost) {
  int checked = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Rng rng(seed);
    SyntheticStatsOptions o;
    o.sources = seed % 2 ? 8 : 16;
    o.experts = 24;
    o.classes = 3;
    o.seed = seed;
    const SourceExpertCounts stats = SyntheticStats(o).Next();
    const Placement cur = RandomPlacement(rng, 1, 24, 8, 4);
    PlacementTopology topo;
    topo.gpus = 8;
    topo.gpus_per_node = seed % 3 == 0 ? 8 : seed % 3 == 1 ? 4 : 2;
    LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, {});
    if (seed % 2 == 0) {  // interleaved nodes: GPU g on node g % nodes
      for (int g = 0; g < p.gpus; ++g) p.node_of_gpu[g] = g % p.nodes;
    }
    const SearchState st(p, p.current);
    for (int k = 0; k < 40; ++k) {
      const int x = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.experts)));
      int rem = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.gpus)));
      int add = static_cast<int>(rng.UniformInt(static_cast<uint64_t>(p.gpus)));
      if (st.count(x, rem) == 0) rem = -1;
      if (add == rem || st.count(x, add) > 0) add = -1;
      std::vector<int> cnt(p.gpus);
      for (int g = 0; g < p.gpus; ++g) cnt[g] = st.count(x, g) - (g == rem) + (g == add);
      double expected = 0;
      for (int s = 0; s < p.sources; ++s) {
        const int sg = p.source_gpu[s];
        double c = p.beta;
        for (int g = 0; g < p.gpus; ++g) {
          if (cnt[g] > 0 && p.node_of_gpu[g] == p.node_of_gpu[sg]) c = std::min(c, p.alpha);
        }
        if (cnt[sg] > 0) c = 0.0;
        expected += std::max(0.0, p.A(s, x)) * c;
      }
      EXPECT_EQ(st.Traffic(x, rem, add), expected) << "seed " << seed << " expert " << x;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 320);
}

TEST(GimbalLocality, ParamsAreParsedAndChecked) {
  Params p;
  p.Set("locality_replicas", "7");
  p.Set("locality_spare_load", "1.5");
  p.Set("count_must_gain", "false");
  Result<GimbalPlacementConfig> c = GimbalPlacementConfig::FromParams(p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->locality_replicas, 7);
  EXPECT_EQ(c->locality_spare_load, 1.5);
  EXPECT_FALSE(c->count_must_gain);
  Params bad;
  bad.Set("locality_replicas", "-1");
  EXPECT_FALSE(GimbalPlacementConfig::FromParams(bad).ok());
}

}  // namespace
}  // namespace gimbal
