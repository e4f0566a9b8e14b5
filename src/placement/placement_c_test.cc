#include "gimbal/placement_c.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "placement/synthetic_stats.h"
#include "policy/placement/placement.h"

namespace gimbal {
namespace {

TEST(PlacementCApi, PlansFromArraysAndRoundTrips) {
  SyntheticStatsOptions o;
  o.layers = 2;
  o.sources = 8;
  o.experts = 16;
  const SourceExpertCounts stats = SyntheticStats(o).Next();
  const Placement current = Placement::Contiguous(2, 16, 4, 1);
  char err[256] = "";
  gimbal_planner* planner =
      gimbal_planner_create("gimbal", "max_moves_per_layer=6;min_gain=0", err, sizeof err);
  ASSERT_NE(planner, nullptr) << err;
  const gimbal_topology topo{4, 2, 0.2, 1.0, 1, 1.0};
  std::vector<int32_t> out(current.phy2log.size(), -1);
  ASSERT_EQ(gimbal_planner_plan(planner, &topo, 2, 8, 16, 5, stats.counts.data(),
                                current.phy2log.data(), out.data()),
            0)
      << gimbal_planner_last_error(planner);
  Placement plan = current;
  plan.phy2log = out;
  EXPECT_TRUE(plan.Validate().ok());
  gimbal_quality q{};
  ASSERT_EQ(gimbal_planner_quality(planner, &q), 0);
  EXPECT_LE(q.experts_moved, 12);
  EXPECT_GE(q.mean_max_over_mean, 1.0);
  // Routes: weights sum to 1 and point at replicas of the expert.
  int32_t slots[8];
  float weights[8];
  for (int x = 0; x < 16; ++x) {
    const int n = gimbal_planner_route(planner, 1, 3, x, slots, weights, 8);
    ASSERT_GT(n, 0);
    float sum = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(out[16 * 0 + 20 + slots[i]], x);
      sum += weights[i];
    }
    EXPECT_NEAR(sum, 1.0f, 1e-3);
  }
  // NULL current: the contiguous layout.
  EXPECT_EQ(
      gimbal_planner_plan(planner, &topo, 2, 8, 16, 5, stats.counts.data(), nullptr, out.data()),
      0);
  // Errors come back as messages.
  std::vector<double> bad = stats.counts;
  bad[5] = -1;
  EXPECT_EQ(gimbal_planner_plan(planner, &topo, 2, 8, 16, 5, bad.data(), nullptr, out.data()), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("layer 0, source 0, expert 5"),
            std::string::npos)
      << gimbal_planner_last_error(planner);
  EXPECT_EQ(gimbal_planner_route(planner, 0, 0, 0, slots, weights, 8), -1);
  gimbal_planner_destroy(planner);

  EXPECT_EQ(gimbal_planner_create("nope", nullptr, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("unknown placement policy"), std::string::npos);
  EXPECT_EQ(gimbal_planner_create("gimbal", "oops", err, sizeof err), nullptr);
  gimbal_planner* eplb = gimbal_planner_create("eplb", "", err, sizeof err);
  ASSERT_NE(eplb, nullptr) << err;
  ASSERT_EQ(gimbal_planner_plan(eplb, &topo, 2, 8, 16, 5, stats.counts.data(), nullptr, out.data()),
            0);
  EXPECT_GT(gimbal_planner_route(eplb, 0, 0, 0, slots, weights, 8), 0);
  gimbal_planner_destroy(eplb);
}

// Found by fuzz/c_api.cc: an EPLB plan keeps no per-source routes, and a source past the last one
// was answered as if it existed.
TEST(PlacementCApi, RoutesForASourcePastTheLastOneAreRefused) {
  SyntheticStatsOptions o;
  o.layers = 1;
  o.sources = 4;
  o.experts = 8;
  const SourceExpertCounts stats = SyntheticStats(o).Next();
  char err[256] = "";
  gimbal_planner* planner = gimbal_planner_create("eplb", "", err, sizeof err);
  ASSERT_NE(planner, nullptr) << err;
  const gimbal_topology topo{4, 2, 0.2, 1.0, 1, 1.0};
  std::vector<int32_t> out(static_cast<size_t>(4 * 3), -1);
  ASSERT_EQ(
      gimbal_planner_plan(planner, &topo, 1, 4, 8, 3, stats.counts.data(), nullptr, out.data()), 0)
      << gimbal_planner_last_error(planner);
  int32_t slots[8];
  float weights[8];
  EXPECT_GE(gimbal_planner_route(planner, 0, 3, 0, slots, weights, 8), 1);
  EXPECT_EQ(gimbal_planner_route(planner, 0, 4, 0, slots, weights, 8), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("source 4 (0..3)"),
            std::string::npos)
      << gimbal_planner_last_error(planner);
  EXPECT_EQ(gimbal_planner_route(planner, 0, 1000, 0, slots, weights, 8), -1);
  EXPECT_EQ(gimbal_planner_route(planner, 5, 0, 0, slots, weights, 8), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("layer 5 (plan has 0..0)"),
            std::string::npos)
      << gimbal_planner_last_error(planner);
  gimbal_planner_destroy(planner);
  // Before any plan: route and quality say so.
  planner = gimbal_planner_create("eplb", "", err, sizeof err);
  ASSERT_NE(planner, nullptr) << err;
  gimbal_quality q{};
  EXPECT_EQ(gimbal_planner_quality(planner, &q), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("no plan"), std::string::npos);
  EXPECT_EQ(gimbal_planner_route(planner, 0, 0, 0, slots, weights, 8), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("no plan"), std::string::npos);
  gimbal_planner_destroy(planner);
}

}  // namespace
// Sizes past the formats' bounds fail the call with a message before anything is copied or
// allocated (2^30 layers and sources threw std::length_error out of the C function).
TEST(PlacementCApi, ArraysPastTheBoundsAreRefusedBeforeTheyAreRead) {
  char err[256] = "";
  gimbal_planner* planner = gimbal_planner_create("gimbal", "", err, sizeof err);
  ASSERT_NE(planner, nullptr) << err;
  const gimbal_topology topo{4, 2, 0.2, 1.0, 1, 1.0};
  double counts[1] = {0};  // never read: the sizes fail first
  int32_t out[1] = {0};
  EXPECT_EQ(gimbal_planner_plan(planner, &topo, 1 << 30, 1 << 30, 8, 2, counts, nullptr, out), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("layers x sources x experts"),
            std::string::npos)
      << gimbal_planner_last_error(planner);
  const gimbal_topology wide{1 << 20, 0, 0.2, 1.0, 1, 1.0};
  EXPECT_EQ(gimbal_planner_plan(planner, &wide, 1, 1, 8, 1 << 10, counts, nullptr, out), -1);
  EXPECT_NE(std::string(gimbal_planner_last_error(planner)).find("gpus x slots_per_gpu"),
            std::string::npos);
  gimbal_planner_destroy(planner);
}

}  // namespace gimbal
