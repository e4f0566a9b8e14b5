#include "core/stats.h"

#include <gtest/gtest.h>

namespace gimbal {
namespace {

TEST(StatsTest, PercentileInterpolatesLikeNumpy) {
  const std::vector<double> xs{1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(xs, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile(xs, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(xs, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile(xs, 99), 3.97);  // numpy.percentile([1,2,3,4], 99)
  EXPECT_DOUBLE_EQ(Percentile(std::vector<double>{}, 50), 0);
}

TEST(StatsTest, MeanAndStdDev) {
  const std::vector<double> xs{2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(Mean(xs), 5);
  EXPECT_NEAR(StdDev(xs), 2.138089935, 1e-9);
}

TEST(StatsTest, WeightedPercentileCountsWeights) {
  std::vector<std::pair<double, double>> s{{10, 1}, {1, 98}, {100, 1}};
  EXPECT_DOUBLE_EQ(WeightedPercentile(s, 50), 1);
  EXPECT_DOUBLE_EQ(WeightedPercentile(s, 99), 10);
  EXPECT_DOUBLE_EQ(WeightedPercentile(s, 100), 100);
  EXPECT_NEAR(WeightedMean(s), (10 + 98 + 100) / 100.0, 1e-12);
}

}  // namespace
}  // namespace gimbal
