#include "policy/placement/eplb.h"

#include <gtest/gtest.h>

#include "core/random.h"

namespace gimbal {
namespace {

TEST(Eplb, BalancedPackingPutsTheHeaviestFirstOnTheLightestPack) {
  const std::vector<double> items = {5, 1, 1, 4, 5, 4};
  const auto p = BalancedPacking(items, 2);
  // Order 5(0) 5(4) 4(3) 4(5) 1(1) 1(2): 0->A, 4->B, 3->A, 5->B, 1->A, 2->B.
  const std::vector<std::pair<int, int>> want = {{0, 0}, {0, 2}, {1, 2}, {0, 1}, {1, 0}, {1, 1}};
  EXPECT_EQ(p, want);
}

TEST(Eplb, GlobalReplicatesByPerReplicaLoadAndPacks) {
  // Loads 10, 1, 1, 8 over 6 slots on 2 GPUs: the two extra slots go to expert 0 (10 > 8), then
  // expert 3 (8 > 5). Replica loads 5 1 1 4 5 4 pack as GPU0 = {0, 3, 1}, GPU1 = {0, 3, 2}.
  const std::vector<double> w = {10, 1, 1, 8};
  Result<EplbResult> r = EplbRebalance(w, 1, 4, {6, 1, 1, 2});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->hierarchical);
  EXPECT_EQ(r->phy2log, (std::vector<int32_t>{0, 3, 1, 0, 3, 2}));
  EXPECT_EQ(r->logcnt, (std::vector<int32_t>{2, 1, 1, 2}));
  EXPECT_EQ(r->max_replicas, 2);
  EXPECT_EQ(r->log2phy, (std::vector<int32_t>{0, 3, 2, -1, 5, -1, 1, 4}));
}

TEST(Eplb, HierarchicalPacksGroupsOntoNodesFirst) {
  // 8 experts in 4 groups of 2 (loads 10, 2, 8, 4) over 2 nodes of 1 GPU, 10 slots. Groups: 0 ->
  // node 0, 2 -> node 1, 3 -> node 1 (8 < 10), 1 -> node 0. Node 0 holds experts 0..3 (5 5 1 1):
  // the extra slot goes to expert 0 (tie, lower index); replica loads 2.5 5 1 1 2.5 pack as
  // [1, 0, 0, 2, 3]. Node 1 holds 4..7 (4 4 2 2): extra to 4; loads 2 4 2 2 2 -> [5, 4, 6, 7, 4].
  const std::vector<double> w = {5, 5, 1, 1, 4, 4, 2, 2};
  Result<EplbResult> r = EplbRebalance(w, 1, 8, {10, 4, 2, 2});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->hierarchical);
  EXPECT_EQ(r->phy2log, (std::vector<int32_t>{1, 0, 0, 2, 3, 5, 4, 6, 7, 4}));
}

TEST(Eplb, FallsBackToGlobalWhenGroupsDoNotDivideOverNodes) {
  const std::vector<double> w = {5, 5, 1, 1, 4, 4, 2, 2};
  Result<EplbResult> r = EplbRebalance(w, 1, 8, {10, 1, 2, 2});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->hierarchical);
}

TEST(Eplb, EveryPlanIsConsistent) {
  Rng rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int layers = 3, experts = 32, gpus = 8;
    std::vector<double> w(layers * experts);
    for (double& v : w) v = rng.Exponential(1.0) * 100;
    const EplbOptions o{48, trial % 2 ? 4 : 8, 2, gpus};
    Result<EplbResult> r = EplbRebalance(w, layers, experts, o);
    ASSERT_TRUE(r.ok());
    Placement p = r->ToPlacement(gpus);
    ASSERT_TRUE(p.Validate().ok()) << p.Validate().message();
    for (int l = 0; l < layers; ++l) {
      for (int x = 0; x < experts; ++x) {
        const int cnt = r->logcnt[l * experts + x];
        for (int k = 0; k < r->max_replicas; ++k) {
          const int32_t slot = r->log2phy[(l * experts + x) * r->max_replicas + k];
          if (k < cnt) {
            EXPECT_EQ(r->phy2log[l * 48 + slot], x);
          } else {
            EXPECT_EQ(slot, -1);
          }
        }
      }
    }
  }
}

TEST(Eplb, RejectsBadShapes) {
  const std::vector<double> w = {1, 2, 3, 4};
  EXPECT_FALSE(EplbRebalance(w, 1, 4, {3, 1, 1, 1}).ok());  // fewer slots than experts
  EXPECT_FALSE(EplbRebalance(w, 1, 4, {6, 1, 1, 4}).ok());  // slots not a multiple of GPUs
  EXPECT_FALSE(EplbRebalance(w, 1, 3, {6, 1, 1, 2}).ok());  // weights of the wrong size
  const std::vector<double> bad = {1, -2, 3, 4};
  EXPECT_NE(EplbRebalance(bad, 1, 4, {4, 1, 1, 2}).status().message().find("layer 0 expert 1"),
            std::string::npos);
}

}  // namespace
}  // namespace gimbal
