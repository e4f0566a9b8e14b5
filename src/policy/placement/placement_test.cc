#include "policy/placement/placement.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

TEST(PlacementTest, ContiguousPutsExpertsInOrder) {
  Placement p = Placement::Contiguous(2, 8, 4);
  ASSERT_TRUE(p.Validate().ok());
  EXPECT_EQ(p.slots_per_gpu, 2);
  EXPECT_EQ(p.Expert(1, 0), 0);
  EXPECT_EQ(p.Expert(1, 5), 5);
  EXPECT_EQ(p.GpuOfSlot(5), 2);
}

TEST(PlacementTest, RedundantSlotsHoldValidReplicas) {
  Placement p = Placement::Contiguous(1, 8, 4, 1);
  ASSERT_TRUE(p.Validate().ok());
  auto l2p = p.Log2Phy();
  EXPECT_EQ(l2p[0][0].size(), 2u);  // expert 0 got the first redundant slot
  EXPECT_EQ(l2p[0][7].size(), 1u);
}

TEST(PlacementTest, ValidateNamesTheFault) {
  Placement p = Placement::Contiguous(2, 4, 2);
  p.phy2log[5] = 0;  // layer 1 loses expert 1
  Status s = p.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("layer 1 has no slot for expert 1"), std::string::npos);
  p.phy2log[5] = 9;
  EXPECT_NE(p.Validate().message().find("outside [0, 4)"), std::string::npos);
}

TEST(PlacementTest, SourceRoutesMustPointAtReplicasAndSumToOne) {
  Placement p = Placement::Contiguous(1, 2, 2);
  p.sources = 1;
  p.source_routes = SourceRoutes({{{0, 1.0f}}, {{1, 1.0f}}});
  EXPECT_TRUE(p.Validate().ok());
  p.source_routes = SourceRoutes({{{0, 1.0f}}, {{0, 1.0f}}});
  EXPECT_FALSE(p.Validate().ok());
  p.source_routes = SourceRoutes({{{0, 1.0f}}, {{1, 0.5f}}});
  EXPECT_NE(p.Validate().message().find("sums to"), std::string::npos);
  p.source_routes = SourceRoutes({{{0, 1.0f}}});
  EXPECT_NE(p.Validate().message().find("1 entries, expected 2"), std::string::npos);
}

TEST(SourceRoutesTest, StoresRoutesFlatAndReadsThemBack) {
  const std::vector<std::vector<SlotShare>> nested = {
      {{0, 0.5f}, {3, 0.5f}}, {}, {{2, 1.0f}}, {}, {{1, 0.25f}, {4, 0.25f}, {5, 0.5f}}};
  SourceRoutes r(nested);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r.shares().size(), 6u);
  EXPECT_EQ(r.ToNested(), nested);
  EXPECT_TRUE(r[1].empty());
  ASSERT_EQ(r[4].size(), 3u);
  EXPECT_EQ(r[4][2], (SlotShare{5, 0.5f}));

  SourceRoutes built;
  built.Append(r[0]);
  built.AppendEmpty(1);
  built.Append(r[2]);
  built.AppendEmpty(1);
  built.Append(r[4]);
  EXPECT_EQ(built, r);

  // Truncating then appending: what a planner does when a layer keeps its placement.
  built.Truncate(3);
  EXPECT_EQ(built.size(), 3u);
  EXPECT_EQ(built.shares().size(), 3u);
  built.Append(std::vector<SlotShare>{{7, 1.0f}});
  EXPECT_EQ(built[3][0].slot, 7);
  built.Truncate(0);
  EXPECT_TRUE(built.empty());
  EXPECT_TRUE(built.shares().empty());

  SourceRoutes two = r;
  two.Append(two);  // itself
  ASSERT_EQ(two.size(), 10u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(std::ranges::equal(two[5 + i], r[i])) << i;
  }
}

}  // namespace
}  // namespace gimbal
