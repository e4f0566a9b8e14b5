#include "experiment/stats.h"

#include <cmath>

#include <gtest/gtest.h>

namespace gimbal::experiment {
namespace {

TEST(StudentT, QuantilesMatchTables) {
  // Two-sided 95% critical values from standard t tables.
  EXPECT_NEAR(StudentTQuantile(0.975, 1), 12.706205, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.975, 2), 4.302653, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.975, 4), 2.776445, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.975, 9), 2.262157, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.975, 29), 2.045230, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.995, 10), 3.169273, 1e-5);
  EXPECT_NEAR(StudentTQuantile(0.975, 1e7), 1.959964, 1e-4);  // the normal limit
  EXPECT_NEAR(StudentTQuantile(0.025, 4), -2.776445, 1e-5);
  EXPECT_EQ(StudentTQuantile(0.5, 3), 0.0);
  EXPECT_TRUE(std::isnan(StudentTQuantile(1.0, 3)));
}

TEST(StudentT, CdfKnownValues) {
  EXPECT_NEAR(StudentTCdf(0, 5), 0.5, 1e-12);
  EXPECT_NEAR(StudentTCdf(1, 1), 0.75, 1e-12);  // Cauchy: 1/2 + atan(1)/pi
  EXPECT_NEAR(StudentTCdf(2.776445, 4), 0.975, 1e-6);
  EXPECT_NEAR(StudentTCdf(-2.262157, 9), 0.025, 1e-6);
}

TEST(TInterval, KnownSamples) {
  // 1..5: mean 3, s = sqrt(2.5), half width = t(0.975, 4) * s / sqrt(5).
  Interval a = TInterval({1, 2, 3, 4, 5});
  EXPECT_EQ(a.n, 5);
  EXPECT_DOUBLE_EQ(a.mean, 3.0);
  EXPECT_NEAR(a.stddev, 1.5811388, 1e-6);
  EXPECT_NEAR(a.half_width, 1.9632432, 1e-6);
  EXPECT_NEAR(a.lo, 1.0367568, 1e-6);
  EXPECT_NEAR(a.hi, 4.9632432, 1e-6);

  // Relative changes of three seeds, in percent.
  Interval b = TInterval({-40, -45, -42});
  EXPECT_NEAR(b.mean, -42.333333, 1e-6);
  EXPECT_NEAR(b.stddev, 2.5166115, 1e-6);
  EXPECT_NEAR(b.half_width, 6.2516, 1e-3);

  // Two samples: t(0.975, 1) = 12.706; 90% uses t(0.95, 1) = 6.3138.
  Interval c = TInterval({10, 12});
  EXPECT_NEAR(c.half_width, 12.706205 * std::sqrt(2.0) / std::sqrt(2.0), 1e-4);
  EXPECT_NEAR(TInterval({10, 12}, 0.90).half_width, 6.313752, 1e-4);

  // Identical samples: zero width.
  Interval d = TInterval({7, 7, 7});
  EXPECT_DOUBLE_EQ(d.half_width, 0.0);
  EXPECT_DOUBLE_EQ(d.lo, 7.0);
}

TEST(TInterval, TooFewSamplesHaveNoInterval) {
  Interval one = TInterval({4.5});
  EXPECT_EQ(one.n, 1);
  EXPECT_FALSE(one.has_interval());
  EXPECT_DOUBLE_EQ(one.mean, 4.5);
  EXPECT_DOUBLE_EQ(one.half_width, 0.0);
  Interval none = TInterval({});
  EXPECT_EQ(none.n, 0);
  EXPECT_FALSE(none.has_interval());
}

}  // namespace
}  // namespace gimbal::experiment
