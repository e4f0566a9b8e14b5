#include "placement/synthetic_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

SyntheticStatsOptions Small() {
  SyntheticStatsOptions o;
  o.layers = 2;
  o.sources = 4;
  o.experts = 8;
  o.classes = 2;
  o.tokens_per_source = 1000;
  return o;
}

double SourceTotal(const SourceExpertCounts& c, int l, int s) {
  double t = 0;
  for (int x = 0; x < c.experts; ++x) t += c.At(l, s, x);
  return t;
}

TEST(SyntheticStats, ShapedRoundedAndDeterministicForASeed) {
  const SyntheticStatsOptions o = Small();
  const SourceExpertCounts a = SyntheticStats(o).Next();
  EXPECT_EQ(a.layers, 2);
  EXPECT_EQ(a.sources, 4);
  EXPECT_EQ(a.experts, 8);
  ASSERT_TRUE(a.Validate().ok()) << a.Validate().message();
  for (double v : a.counts) EXPECT_EQ(v, std::round(v));
  EXPECT_EQ(SyntheticStats(o).Next().counts, a.counts);
  SyntheticStatsOptions other = o;
  other.seed = 2;
  EXPECT_NE(SyntheticStats(other).Next().counts, a.counts);
}

TEST(SyntheticStats, SourcesOfOneClassSeeTheSameExpertsWithoutNoise) {
  SyntheticStatsOptions o = Small();
  o.noise_sigma = 0;
  o.dominant_share = 0.9;
  const SourceExpertCounts c = SyntheticStats(o).Next();
  for (int l = 0; l < o.layers; ++l) {
    // Sources 0 and 1 serve class 0, sources 2 and 3 class 1 (contiguous blocks).
    for (int x = 0; x < o.experts; ++x) {
      EXPECT_EQ(c.At(l, 0, x), c.At(l, 1, x));
      EXPECT_EQ(c.At(l, 2, x), c.At(l, 3, x));
    }
    // Each source routes about tokens_per_source assignments (up to rounding).
    for (int s = 0; s < o.sources; ++s) EXPECT_NEAR(SourceTotal(c, l, s), 1000, o.experts);
    // The two classes rank experts differently: the hottest expert of class 0 is not class 1's.
    std::vector<double> c0(o.experts), c1(o.experts);
    for (int x = 0; x < o.experts; ++x) {
      c0[x] = c.At(l, 0, x);
      c1[x] = c.At(l, 2, x);
    }
    EXPECT_NE(c0, c1);
  }
}

TEST(SyntheticStats, DriftMovesThePopularityOnlyWhenAsked) {
  SyntheticStatsOptions o = Small();
  o.noise_sigma = 0;
  SyntheticStats still(o);
  const SourceExpertCounts first = still.Next();
  EXPECT_EQ(still.Next().counts, first.counts);
  o.drift_swaps = 4;
  SyntheticStats drifting(o);
  EXPECT_EQ(drifting.Next().counts, first.counts);  // the first window is not drifted
  EXPECT_NE(drifting.Next().counts, first.counts);
}

}  // namespace
}  // namespace gimbal
