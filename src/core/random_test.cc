#include "core/random.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/stats.h"

namespace gimbal {
namespace {

TEST(RngTest, SameSeedSameStream) {
  Rng a(42);
  Rng b(42);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.NextU64(), b.NextU64());
}

TEST(RngTest, KnownFirstValuesArePortable) {
  // Pinned values: a change here changes every simulation result for a given seed.
  Rng r(1);
  EXPECT_EQ(r.NextU64(), 12966619160104079557ULL);
  EXPECT_EQ(r.NextU64(), 9600361134598540522ULL);
  EXPECT_NE(Rng(1).NextU64(), Rng(2).NextU64());
}

TEST(RngTest, ForkIsIndependentAndDoesNotAdvance) {
  Rng a(7);
  Rng f1 = a.Fork(1);
  Rng f2 = a.Fork(2);
  EXPECT_NE(f1.NextU64(), f2.NextU64());
  Rng b(7);
  EXPECT_EQ(a.NextU64(), b.NextU64());
}

TEST(RngTest, UniformMomentsWithinTolerance) {
  Rng r(3);
  std::vector<double> xs(200000);
  for (double& x : xs) x = r.Uniform();
  EXPECT_NEAR(Mean(xs), 0.5, 0.005);
  for (double x : xs) ASSERT_TRUE(x >= 0 && x < 1);
}

TEST(RngTest, ExponentialAndGammaMeans) {
  Rng r(4);
  std::vector<double> e(200000);
  std::vector<double> g(200000);
  std::vector<double> g_small(200000);
  for (size_t i = 0; i < e.size(); ++i) {
    e[i] = r.Exponential(4.0);
    g[i] = r.Gamma(3.0, 2.0);
    g_small[i] = r.Gamma(0.5, 2.0);
  }
  EXPECT_NEAR(Mean(e), 0.25, 0.25 * 0.02);
  EXPECT_NEAR(Mean(g), 6.0, 6.0 * 0.02);
  EXPECT_NEAR(StdDev(g), std::sqrt(3.0) * 2.0, 0.05 * std::sqrt(3.0) * 2.0);
  EXPECT_NEAR(Mean(g_small), 1.0, 0.03);
}

TEST(RngTest, UniformIntCoversRangeEvenly) {
  Rng r(5);
  std::vector<int> counts(10);
  for (int i = 0; i < 100000; ++i) counts[r.UniformInt(10)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);  // ~4 sigma
}

TEST(AliasTableTest, SharesMatchWeightsWithinOnePercent) {
  const std::vector<double> w{0.5, 0.25, 0.125, 0.125, 0.0};
  AliasTable t(w);
  Rng r(6);
  std::vector<int> counts(w.size());
  const int n = 100000;
  for (int i = 0; i < n; ++i) counts[t.Sample(r)]++;
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(counts[i] / double(n), w[i], 0.01);
  EXPECT_EQ(counts[4], 0);
}

TEST(ZipfTest, NormalisedAndDecreasing) {
  auto w = ZipfWeights(128, 1.1);
  double s = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    s += w[i];
    if (i > 0) {
      EXPECT_LT(w[i], w[i - 1]);
    }
  }
  EXPECT_NEAR(s, 1.0, 1e-12);
  auto flat = ZipfWeights(4, 0.0);
  for (double x : flat) EXPECT_DOUBLE_EQ(x, 0.25);
}

}  // namespace
}  // namespace gimbal
