// RoutingTables against values computed by hand (GPUs that do not fill whole nodes; sources the
// placement routes beside sources it does not) and, bit for bit, against a plain per-source walk
// over experts (the definition in expert_routing.h) on random placements, for fresh builds and for
// Rebuild after a change of placement or popularity: every table, OwnNodeReachRow included.
#include "sim/expert_routing.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "core/random.h"

namespace gimbal::sim {
namespace {

// Six GPUs in nodes of four: node 0 holds GPUs 0-3, node 1 GPUs 4-5.
TEST(RoutingTablesTest, GpusThatDoNotFillTheLastNode) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 0.0}};  // uniform popularity: 1/6 per expert
  ExpertPopularity pop(classes, 1, 6, 1, 0.0, 3);
  const Placement p = Placement::Contiguous(1, 6, 6);  // expert g on GPU g
  RoutingTables t(pop, p, 6, 4);
  ASSERT_EQ(t.nodes(), 2);
  for (int r = 0; r < 6; ++r) {
    for (int g = 0; g < 6; ++g) EXPECT_NEAR(t.Share(r, 0, 0)[g], 1.0 / 6, 1e-15);
    // One expert per token: it reaches a node with the node's share.
    EXPECT_NEAR(t.ReachNode(r, 0, 0)[0], 4.0 / 6, 1e-15);
    EXPECT_NEAR(t.ReachNode(r, 0, 0)[1], 2.0 / 6, 1e-15);
    EXPECT_NEAR(t.NodeLocality(r, 0), r < 4 ? 4.0 / 6 : 2.0 / 6, 1e-15);
  }
  // Three sources run on GPUs 0, 2 and 4 (r · gpus / sources): nodes 0, 0 and 1.
  RoutingTables three(pop, p, 3, 4);
  EXPECT_NEAR(three.NodeLocality(0, 0), 4.0 / 6, 1e-15);
  EXPECT_NEAR(three.NodeLocality(1, 0), 4.0 / 6, 1e-15);
  EXPECT_NEAR(three.NodeLocality(2, 0), 2.0 / 6, 1e-15);
  // Two picks per token (top_k 2): a GPU is reached with 1 - (1 - share)^2.
  ExpertPopularity pop2(classes, 1, 6, 2, 0.0, 3);
  RoutingTables two(pop2, p, 6, 4);
  EXPECT_NEAR(two.Reach(5, 0, 0)[5], 1 - (5.0 / 6) * (5.0 / 6), 1e-15);
  EXPECT_NEAR(two.ReachNode(5, 0, 0)[1], 1 - (4.0 / 6) * (4.0 / 6), 1e-15);
}

// Source 0 has routes; source 1 (beyond placement.sources) splits evenly over replicas.
TEST(RoutingTablesTest, RoutedAndUnroutedSourcesInOnePlacement) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 0.0}};  // p = {0.5, 0.5}
  ExpertPopularity pop(classes, 1, 2, 1, 0.0, 3);
  Placement p = Placement::Contiguous(1, 2, 2, 1);
  p.phy2log = {0, 1, 0, 1};  // expert 0 in slots 0 (GPU 0) and 2 (GPU 1), expert 1 in 1 and 3
  p.sources = 1;
  p.source_routes = SourceRoutes({
      {{0, 1.0f}},               // expert 0: all to slot 0
      {{1, 0.75f}, {3, 0.25f}},  // expert 1: 3/4 to slot 1, 1/4 to slot 3
  });
  ASSERT_TRUE(p.Validate().ok()) << p.Validate().message();
  RoutingTables t(pop, p, 2, 1);  // one GPU per node
  EXPECT_DOUBLE_EQ(t.Share(0, 0, 0)[0], 0.5 + 0.375);
  EXPECT_DOUBLE_EQ(t.Share(0, 0, 0)[1], 0.125);
  EXPECT_DOUBLE_EQ(t.Share(1, 0, 0)[0], 0.5);  // even split: a quarter per slot
  EXPECT_DOUBLE_EQ(t.Share(1, 0, 0)[1], 0.5);
  EXPECT_DOUBLE_EQ(t.NodeLocality(0, 0), 0.875);
  EXPECT_DOUBLE_EQ(t.NodeLocality(1, 0), 0.5);  // source 1 runs on GPU 1
  // Slot loads (pairs per token, all sources together): each source's share over 2 sources.
  const auto load = t.SlotLoad(0, 0);
  EXPECT_DOUBLE_EQ(load[0], 0.5 / 2 + 0.25 / 2);
  EXPECT_DOUBLE_EQ(load[1], 0.375 / 2 + 0.25 / 2);
  EXPECT_DOUBLE_EQ(load[2], 0.0 / 2 + 0.25 / 2);
  EXPECT_DOUBLE_EQ(load[3], 0.125 / 2 + 0.25 / 2);
}

// ---------------------------------------------------------------------------------------------
// The plain walk: for each class, layer and source, the source's route of each expert in turn
// (Placement::Route for a routed source, p / replicas per replica for the others).
struct Plain {
  std::vector<std::vector<double>> share, reach, reach_node;  // [(r * C + c) * L + l][·]
  std::vector<std::vector<double>> slot_load;                 // [c * L + l][slot]
  std::vector<double> locality;                               // [r * C + c]
};

Plain PlainTables(const ExpertPopularity& pop, const Placement& pl, int sources, int gpn) {
  const int C = pop.classes(), L = pop.layers(), G = pl.gpus, k = pop.top_k();
  const int nodes = (G + gpn - 1) / gpn;
  const auto l2p = pl.Log2Phy();
  Plain out;
  out.share.resize(static_cast<size_t>(sources) * C * L);
  out.reach = out.share;
  out.reach_node = out.share;
  out.slot_load.assign(static_cast<size_t>(C) * L, std::vector<double>(pl.slots(), 0.0));
  out.locality.assign(static_cast<size_t>(sources) * C, 0.0);
  for (int c = 0; c < C; ++c) {
    for (int l = 0; l < L; ++l) {
      const auto p = pop.Row(c, l);
      std::vector<double>& slot_load = out.slot_load[static_cast<size_t>(c) * L + l];
      for (int r = 0; r < sources; ++r) {
        std::vector<double> per_gpu(G, 0.0);
        for (int x = 0; x < pl.experts; ++x) {
          if (!pl.source_routes.empty() && r < pl.sources) {
            for (const SlotShare& sh : pl.Route(l, r, x)) {
              per_gpu[pl.GpuOfSlot(sh.slot)] += p[x] * sh.weight;
              slot_load[sh.slot] += k * p[x] * sh.weight / sources;
            }
          } else {
            const double each = p[x] / static_cast<double>(l2p[l][x].size());
            for (int32_t slot : l2p[l][x]) {
              per_gpu[pl.GpuOfSlot(slot)] += each;
              slot_load[slot] += k * each / sources;
            }
          }
        }
        const size_t i = (static_cast<size_t>(r) * C + c) * L + l;
        out.share[i] = per_gpu;
        for (int g = 0; g < G; ++g) {
          out.reach[i].push_back(1.0 - std::pow(std::max(0.0, 1.0 - per_gpu[g]), k));
        }
        const int own_node = static_cast<int>(static_cast<int64_t>(r) * G / sources) / gpn;
        for (int n = 0; n < nodes; ++n) {
          double node_share = 0;
          for (int g = n * gpn; g < std::min(G, (n + 1) * gpn); ++g) node_share += per_gpu[g];
          out.reach_node[i].push_back(1.0 - std::pow(std::max(0.0, 1.0 - node_share), k));
          if (n == own_node) {
            out.locality[static_cast<size_t>(r) * C + c] += std::min(1.0, node_share) / L;
          }
        }
      }
    }
  }
  return out;
}

uint64_t Bits(double v) {
  return std::bit_cast<uint64_t>(v);
}

// Every entry of `t`, bit for bit, against the plain walk.
void ExpectSameAsPlain(const RoutingTables& t, const ExpertPopularity& pop, const Placement& pl,
                       int sources, int gpn, const char* what) {
  SCOPED_TRACE(what);
  const Plain want = PlainTables(pop, pl, sources, gpn);
  const int C = pop.classes(), L = pop.layers();
  int mismatches = 0;
  for (int r = 0; r < sources; ++r) {
    for (int c = 0; c < C; ++c) {
      EXPECT_EQ(Bits(t.NodeLocality(r, c)), Bits(want.locality[static_cast<size_t>(r) * C + c]));
      for (int l = 0; l < L; ++l) {
        const size_t i = (static_cast<size_t>(r) * C + c) * L + l;
        for (int g = 0; g < pl.gpus; ++g) {
          mismatches += Bits(t.Share(r, c, l)[g]) != Bits(want.share[i][g]);
          mismatches += Bits(t.Reach(r, c, l)[g]) != Bits(want.reach[i][g]);
        }
        for (int n = 0; n < t.nodes(); ++n) {
          mismatches += Bits(t.ReachNode(r, c, l)[n]) != Bits(want.reach_node[i][n]);
        }
      }
      // Reach over the source's own node's GPUs, all layers in one run.
      const int first = static_cast<int>(static_cast<int64_t>(r) * pl.gpus / sources) / gpn * gpn;
      const int width = std::min(pl.gpus, first + gpn) - first;
      const auto own = t.OwnNodeReachRow(r, c);
      EXPECT_EQ(own.size(), static_cast<size_t>(L) * width);
      for (int l = 0; l < L && own.size() == static_cast<size_t>(L) * width; ++l) {
        const size_t i = (static_cast<size_t>(r) * C + c) * L + l;
        for (int j = 0; j < width; ++j) {
          mismatches +=
              Bits(own[static_cast<size_t>(l) * width + j]) != Bits(want.reach[i][first + j]);
        }
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    for (int l = 0; l < L; ++l) {
      for (int s = 0; s < pl.slots(); ++s) {
        mismatches +=
            Bits(t.SlotLoad(c, l)[s]) != Bits(want.slot_load[static_cast<size_t>(c) * L + l][s]);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// 6 GPUs of 3 slots (2 experts each + 1 redundant), 12 experts, 3 layers; replicas shuffled and
// routes drawn at random: empty, one slot, a split over two, a repeated slot, a zero weight.
Placement RandomPlacement(Rng& rng, int route_sources) {
  Placement p = Placement::Contiguous(3, 12, 6, 1);
  for (int l = 0; l < p.layers; ++l) {
    for (int s = p.slots() - 1; s > 0; --s) {
      std::swap(p.phy2log[static_cast<size_t>(l) * p.slots() + s],
                p.phy2log[static_cast<size_t>(l) * p.slots() + rng.UniformInt(s + 1)]);
    }
  }
  if (route_sources == 0) return p;
  const auto l2p = p.Log2Phy();
  p.sources = route_sources;
  std::vector<std::vector<SlotShare>> routes(static_cast<size_t>(p.layers) * p.sources * p.experts);
  for (int l = 0; l < p.layers; ++l) {
    for (int r = 0; r < p.sources; ++r) {
      for (int x = 0; x < p.experts; ++x) {
        const auto& reps = l2p[l][x];
        auto& route = routes[(static_cast<size_t>(l) * p.sources + r) * p.experts + x];
        const int32_t a = reps[rng.UniformInt(reps.size())];
        const int32_t b = reps[rng.UniformInt(reps.size())];
        switch (rng.UniformInt(5)) {
          case 0:
            break;  // the even split
          case 1:
            route = {{a, 1.0f}};
            break;
          case 2:
            route = {{a, 0.3f}, {b, 0.7f}};
            break;
          case 3:
            route = {{a, 0.5f}, {a, 0.5f}};
            break;
          default:
            route = {{b, 0.0f}, {a, 1.0f}};
            break;
        }
      }
    }
    // Sources 0 and 1 route alike in layer 0 (a list shared by two sources).
    if (l == 0 && p.sources >= 2) {
      std::copy_n(routes.begin(), p.experts, routes.begin() + p.experts);
    }
  }
  p.source_routes = SourceRoutes(routes);
  EXPECT_TRUE(p.Validate().ok()) << p.Validate().message();
  return p;
}

TEST(RoutingTablesTest, EqualsThePlainWalkBitForBit) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 1.3}, {"b", 1, 0.9}};
  ExpertPopularity pop(classes, 3, 12, 3, 0.3, 5);
  Rng rng(17);
  for (int trial = 0; trial < 10; ++trial) {
    // Routes for all, some or none of the sources; sources as many as the GPUs, or fewer.
    const int sources = trial % 2 == 0 ? 6 : 5;
    const int routed = trial % 3 == 0 ? 0 : (trial % 3 == 1 ? sources : 3);
    const Placement p = RandomPlacement(rng, routed);
    for (int gpn : {4, 6, 1}) {
      RoutingTables t(pop, p, sources, gpn);
      ExpectSameAsPlain(t, pop, p, sources, gpn, "fresh build");
    }
  }
}

TEST(RoutingTablesTest, RebuildEqualsAFreshBuild) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 1.3}, {"b", 1, 0.9}};
  ExpertPopularity pop(classes, 3, 12, 3, 0.3, 5);
  Rng rng(23);
  const int sources = 6, gpn = 4;
  Placement before = RandomPlacement(rng, sources);
  RoutingTables t(pop, before, sources, gpn);
  // Layer 1 changes its routes only, layer 2 its slots (and so its routes); layer 0 stays.
  Placement after = before;
  const Placement other = RandomPlacement(rng, sources);
  const size_t per_layer = static_cast<size_t>(sources) * after.experts;
  const auto l2p = before.Log2Phy();
  std::vector<std::vector<SlotShare>> routes = after.source_routes.ToNested();
  for (int x = 0; x < after.experts; ++x) {
    routes[per_layer + x] = {{l2p[1][x].back(), 1.0f}};  // source 0
    routes[per_layer + 3 * after.experts + x].clear();   // source 3
  }
  for (size_t i = 0; i < per_layer; ++i) {
    const std::span<const SlotShare> o = other.source_routes[2 * per_layer + i];
    routes[2 * per_layer + i].assign(o.begin(), o.end());
  }
  after.source_routes = SourceRoutes(routes);
  std::copy_n(other.phy2log.begin() + 2 * after.slots(), after.slots(),
              after.phy2log.begin() + 2 * after.slots());
  ASSERT_TRUE(after.Validate().ok()) << after.Validate().message();
  t.Rebuild(pop, after, &before);
  ExpectSameAsPlain(t, pop, after, sources, gpn, "some layers changed");
  // Nothing changed.
  t.Rebuild(pop, after, &after);
  ExpectSameAsPlain(t, pop, after, sources, gpn, "nothing changed");
  // New popularity: every layer is rebuilt even though the placement is the same.
  pop.Drift(0.5);
  t.Rebuild(pop, after, &after);
  ExpectSameAsPlain(t, pop, after, sources, gpn, "after drift");
  // To no routes, then to routes for some sources only (the rows change).
  const Placement plain = RandomPlacement(rng, 0);
  t.Rebuild(pop, plain, &after);
  ExpectSameAsPlain(t, pop, plain, sources, gpn, "no routes");
  const Placement some = RandomPlacement(rng, 2);
  t.Rebuild(pop, some, &plain);
  ExpectSameAsPlain(t, pop, some, sources, gpn, "routes for two sources");
}

}  // namespace
}  // namespace gimbal::sim
