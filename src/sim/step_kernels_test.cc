#include "sim/step_kernels.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace gimbal::sim {
namespace {

bool SameBits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Inputs around every edge of the table: non-positive, NaN, tiny, the last interpolated interval,
// 30 itself and beyond, plus random values across the range.
std::vector<double> ActiveInputs() {
  std::vector<double> v = {0.0,
                           -0.0,
                           -1.0,
                           std::numeric_limits<double>::quiet_NaN(),
                           -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::denorm_min(),
                           1e-300,
                           1e-9,
                           0.5,
                           1.0,
                           29.999,
                           std::nextafter(30.0, 0.0),
                           30.0,
                           std::nextafter(30.0, 31.0),
                           1e6};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1.0, 35.0);
  for (int i = 0; i < 997; ++i) v.push_back(u(rng));  // not a multiple of 4: the tail runs too
  return v;
}

TEST(StepKernelsTest, ActiveProbabilityFollowsOneMinusExpAndItsEdges) {
  EXPECT_EQ(ActiveProbability(0.0), 0.0);
  EXPECT_EQ(ActiveProbability(-3.0), 0.0);
  EXPECT_EQ(ActiveProbability(std::numeric_limits<double>::quiet_NaN()), 0.0);
  EXPECT_EQ(ActiveProbability(30.0), 1.0);
  EXPECT_EQ(ActiveProbability(1e9), 1.0);
  for (double n : {0.01, 0.3, 1.0, 2.5, 7.0, 29.9}) {
    EXPECT_NEAR(ActiveProbability(n), 1.0 - std::exp(-n), 1e-5) << n;
  }
  EXPECT_LT(ActiveProbability(1.0), ActiveProbability(1.1));
}

TEST(StepKernelsTest, EverySumActiveVersionGivesTheSameBits) {
  const std::vector<double> n = ActiveInputs();
  std::vector<double> scratch(n.size());
  // Every prefix length, so each lane position and the scalar tail are exercised.
  for (int count = 0; count <= 64; ++count) {
    const double plain = SumActiveScalar(n.data(), scratch.data(), count);
    EXPECT_TRUE(SameBits(SumActive(n.data(), scratch.data(), count), plain)) << count;
    if (__builtin_cpu_supports("avx2")) {
      EXPECT_TRUE(SameBits(SumActiveAvx2(n.data(), scratch.data(), count), plain)) << count;
    }
  }
  const int all = static_cast<int>(n.size());
  double expected = 0;
  for (double v : n) expected += ActiveProbability(v);
  EXPECT_TRUE(SameBits(SumActiveScalar(n.data(), scratch.data(), all), expected));
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_TRUE(SameBits(SumActiveAvx2(n.data(), scratch.data(), all), expected));
    for (int i = 0; i < all; ++i) {  // each lane, not only the sum
      EXPECT_TRUE(SameBits(scratch[static_cast<size_t>(i)], ActiveProbability(n[i]))) << n[i];
    }
  } else {
    GTEST_LOG_(INFO) << "no AVX2 here: only the plain version was checked";
  }
}

TEST(StepKernelsTest, EveryAxpyVersionGivesTheSameBits) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-1e3, 1e3);
  for (size_t n : {0, 1, 3, 4, 7, 8, 15, 16, 17, 384, 1001}) {
    std::vector<double> x(n), y0(n);
    for (size_t i = 0; i < n; ++i) {
      x[i] = u(rng);
      y0[i] = u(rng);
    }
    const double a = u(rng) / 7.0;
    std::vector<double> want = y0;
    for (size_t i = 0; i < n; ++i) want[i] = want[i] + a * x[i];
    auto check = [&](void (*f)(double*, const double*, double, size_t), const char* name) {
      std::vector<double> y = y0;
      f(y.data(), x.data(), a, n);
      for (size_t i = 0; i < n; ++i) EXPECT_TRUE(SameBits(y[i], want[i])) << name << " " << i;
    };
    check(AxpyPlain, "plain");
    check(Axpy, "dispatched");
    if (__builtin_cpu_supports("avx2")) check(AxpyAvx2, "avx2");
    if (__builtin_cpu_supports("avx512f")) check(AxpyAvx512, "avx512");
  }
}

}  // namespace
}  // namespace gimbal::sim
