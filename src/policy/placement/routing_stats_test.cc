#include "policy/placement/routing_stats.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

TEST(RoutingStats, WindowKeepsTheLastNSteps) {
  RoutingStats st(1, 2, 3, {RoutingStatsOptions::Mode::kWindow, 2, 1.0});
  st.Add(0, 1, 2, 5);
  st.EndStep();
  st.Add(0, 1, 2, 7);
  st.Add(0, 0, 0, 1);
  st.EndStep();
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 1, 2), 12);
  st.EndStep();  // an empty step pushes the first out
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 1, 2), 7);
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 0), 1);
  EXPECT_EQ(st.steps_recorded(), 3);
}

TEST(RoutingStats, DecayWeighsRecentStepsMore) {
  RoutingStats st(1, 1, 2, {RoutingStatsOptions::Mode::kDecay, 0, 0.5});
  ASSERT_TRUE(st.RecordStep(std::vector<double>{8, 0}).ok());
  ASSERT_TRUE(st.RecordStep(std::vector<double>{0, 8}).ok());
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 0), 4);
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 1), 8);
}

TEST(RoutingStats, RecordStepRejectsBadCountsWithTheirPlace) {
  RoutingStats st(2, 2, 2);
  std::vector<double> step(8, 1.0);
  step[7] = -1;
  Status s = st.RecordStep(step);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "layer 1, source 1, expert 1")) << s.message();
  EXPECT_FALSE(st.RecordStep(std::vector<double>(3, 1.0)).ok());
}

TEST(RoutingStats, MergeSumsWindowsAlignedOnTheNewestStep) {
  RoutingStatsOptions o{RoutingStatsOptions::Mode::kWindow, 3, 1.0};
  RoutingStats a(1, 1, 1, o), b(1, 1, 1, o);
  ASSERT_TRUE(a.RecordStep(std::vector<double>{1}).ok());
  ASSERT_TRUE(b.RecordStep(std::vector<double>{10}).ok());
  ASSERT_TRUE(b.RecordStep(std::vector<double>{20}).ok());
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_DOUBLE_EQ(a.Counts().At(0, 0, 0), 31);
  // Two more steps push out the oldest merged step (10) only.
  ASSERT_TRUE(a.RecordStep(std::vector<double>{0}).ok());
  ASSERT_TRUE(a.RecordStep(std::vector<double>{0}).ok());
  EXPECT_DOUBLE_EQ(a.Counts().At(0, 0, 0), 21);  // the window now holds [20 + 1, 0, 0]
}

TEST(RoutingStats, MergeRejectsOtherShapes) {
  SourceExpertCounts a = SourceExpertCounts::Zeros(1, 2, 3), b = SourceExpertCounts::Zeros(1, 3, 3);
  a.At(0, 1, 2) = 4;
  SourceExpertCounts c = a;
  ASSERT_TRUE(a.Merge(c).ok());
  EXPECT_DOUBLE_EQ(a.At(0, 1, 2), 8);
  Status s = a.Merge(b);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "cannot merge shape 1x3x3 into 1x2x3")) << s.message();
}

TEST(RoutingStats, ValidateNamesTheFirstBadCount) {
  SourceExpertCounts nan = SourceExpertCounts::Zeros(2, 2, 2);
  nan.At(1, 0, 1) = std::numeric_limits<double>::quiet_NaN();
  Status s = nan.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "layer 1, source 0, expert 1 is not finite")) << s.message();
  nan.counts.pop_back();
  EXPECT_TRUE(Contains(nan.Validate(), "7 counts, expected 2 layers x 2 sources x 2 experts"));
}

// Validate checks every count (a quick pass over all, then the one naming the first bad count):
// each kind of bad count anywhere is found, and the bounds themselves are valid.
TEST(RoutingStats, ValidateFindsEveryKindOfBadCountAnywhere) {
  const double kBad[] = {std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(),
                         -1e-300,
                         -2.0,
                         std::nextafter(kMaxRoutingCount, 2 * kMaxRoutingCount)};
  SourceExpertCounts edge = SourceExpertCounts::Zeros(2, 3, 5);
  edge.At(0, 0, 0) = -0.0;
  edge.At(1, 2, 4) = kMaxRoutingCount;
  EXPECT_TRUE(edge.Validate().ok());
  for (size_t i = 0; i < edge.counts.size(); ++i) {
    for (const double v : kBad) {
      SourceExpertCounts c = edge;
      c.counts[i] = v;
      EXPECT_FALSE(c.Validate().ok()) << "index " << i << " value " << v;
    }
  }
}

}  // namespace
}  // namespace gimbal
