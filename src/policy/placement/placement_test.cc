#include "policy/placement/placement.h"

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
  p.source_routes = {{{0, 1.0f}}, {{1, 1.0f}}};
  EXPECT_TRUE(p.Validate().ok());
  p.source_routes[1] = {{0, 1.0f}};
  EXPECT_FALSE(p.Validate().ok());
  p.source_routes[1] = {{1, 0.5f}};
  EXPECT_NE(p.Validate().message().find("sums to"), std::string::npos);
}

}  // namespace
}  // namespace gimbal
