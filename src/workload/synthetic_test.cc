#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "core/stats.h"
#include "workload/workload.h"

namespace gimbal {
namespace {

std::vector<double> Gaps(const std::vector<double>& arrivals) {
  std::vector<double> gaps;
  for (size_t i = 1; i < arrivals.size(); ++i) gaps.push_back(arrivals[i] - arrivals[i - 1]);
  return gaps;
}

TEST(SyntheticArrivals, PoissonMeanGapIsOneOverRate) {
  WorkloadSpec spec;
  spec.rate = 8;
  spec.burstiness = 1;
  Rng rng(7);
  const auto arrivals = SyntheticArrivals(spec, 200001, rng);
  ASSERT_EQ(arrivals.size(), 200001u);
  EXPECT_EQ(arrivals.front(), 0.0);
  const auto gaps = Gaps(arrivals);
  // Standard error of the mean is 0.22% of it; allow 1%.
  EXPECT_NEAR(Mean(gaps), 1.0 / 8, 0.01 / 8);
  // Exponential gaps: coefficient of variation 1, within 2%.
  EXPECT_NEAR(StdDev(gaps) / Mean(gaps), 1.0, 0.02);
}

TEST(SyntheticArrivals, GammaBurstinessSetsCoefficientOfVariation) {
  for (double burstiness : {0.25, 0.5, 4.0}) {
    WorkloadSpec spec;
    spec.rate = 20;
    spec.burstiness = burstiness;
    Rng rng(11);
    const auto gaps = Gaps(SyntheticArrivals(spec, 200001, rng));
    // The mean stays 1 / rate whatever the burstiness (1%); CV = 1 / sqrt(burstiness) (3%).
    EXPECT_NEAR(Mean(gaps), 1.0 / 20, 0.01 / 20) << "burstiness " << burstiness;
    EXPECT_NEAR(StdDev(gaps) / Mean(gaps), 1 / std::sqrt(burstiness), 0.03 / std::sqrt(burstiness))
        << "burstiness " << burstiness;
  }
}

TEST(SyntheticArrivals, InfiniteRateSendsEverythingAtZero) {
  WorkloadSpec spec;
  spec.rate = std::numeric_limits<double>::infinity();
  spec.num_requests = 500;
  Rng rng(1);
  auto reqs = BuildWorkload(spec, {1.0}, rng);
  ASSERT_TRUE(reqs.ok()) << reqs.status().ToString();
  ASSERT_EQ(reqs->size(), 500u);
  for (const Request& r : *reqs) EXPECT_EQ(r.arrival, 0.0);
}

TEST(SyntheticArrivals, ScheduleChangesTheRatePerPhase) {
  WorkloadSpec spec;
  spec.schedule = {{0, 10}, {100, 50}, {200, 5}};
  Rng rng(3);
  const auto arrivals = SyntheticArrivals(spec, 7000, rng);
  int64_t counts[3] = {0, 0, 0};
  for (double t : arrivals) counts[t < 100 ? 0 : t < 200 ? 1 : 2]++;
  // Expected 1000 in [0, 100) and 5000 in [100, 200) (Poisson, std 32 and 71); the rest, about
  // 1000, at rate 5 afterwards. Tolerance 10%.
  EXPECT_NEAR(counts[0], 1000, 100);
  EXPECT_NEAR(counts[1], 5000, 500);
  EXPECT_NEAR(counts[2], 1000, 100);
  EXPECT_NEAR(arrivals.back(), 200 + counts[2] / 5.0, 40);
}

TEST(SyntheticArrivals, InfinitePhaseSendsTheRestAtOnce) {
  WorkloadSpec spec;
  spec.schedule = {{0, 10}, {5, std::numeric_limits<double>::infinity()}};
  Rng rng(3);
  const auto arrivals = SyntheticArrivals(spec, 1000, rng);
  // About 50 requests in the first 5 s, then a gap drawn at rate 10 crosses 5 s and the rest
  // follow with no gap.
  EXPECT_GT(arrivals.back(), 5.0);
  EXPECT_LT(arrivals.back(), 7.0);
  EXPECT_EQ(arrivals[999], arrivals[900]);
}

struct DistCase {
  LengthDist dist;
  double expected_mean;
  double tolerance;  // relative
};

TEST(LengthDist, MeansMatchTheirParameters) {
  auto make = [](LengthDist::Kind k, double mean) {
    LengthDist d;
    d.kind = k;
    d.mean = mean;
    return d;
  };
  std::vector<DistCase> cases;
  cases.push_back({make(LengthDist::Kind::kFixed, 300), 300, 0});
  LengthDist u = make(LengthDist::Kind::kUniform, 0);
  u.low = 100;
  u.high = 900;
  cases.push_back({u, 500, 0.01});
  LengthDist n = make(LengthDist::Kind::kNormal, 1000);
  n.stddev = 100;
  cases.push_back({n, 1000, 0.01});
  LengthDist ln = make(LengthDist::Kind::kLogNormal, 800);
  ln.sigma = 0.8;
  cases.push_back({ln, 800, 0.02});
  LengthDist p = make(LengthDist::Kind::kPareto, 400);
  p.alpha = 3;
  cases.push_back({p, 400, 0.03});
  for (const DistCase& c : cases) {
    Rng rng(5);
    std::vector<double> xs;
    for (int i = 0; i < 200000; ++i) xs.push_back(static_cast<double>(c.dist.Sample(rng)));
    EXPECT_NEAR(Mean(xs), c.expected_mean, c.tolerance * c.expected_mean + 0.5)
        << LengthDistKindName(c.dist.kind);
  }
  // The normal's spread and the uniform's bounds.
  Rng rng(9);
  std::vector<double> xs;
  for (int i = 0; i < 100000; ++i) xs.push_back(static_cast<double>(n.Sample(rng)));
  EXPECT_NEAR(StdDev(xs), 100, 3);
  for (int i = 0; i < 10000; ++i) {
    const int64_t v = u.Sample(rng);
    ASSERT_GE(v, 100);
    ASSERT_LE(v, 900);
  }
}

TEST(LengthDist, ClampsToMinAndMaxAndNeverBelowOne) {
  LengthDist d;
  d.kind = LengthDist::Kind::kNormal;
  d.mean = 100;
  d.stddev = 200;  // many draws below 0
  d.min = 20;
  d.max = 150;
  Rng rng(2);
  int at_min = 0;
  int at_max = 0;
  for (int i = 0; i < 20000; ++i) {
    const int64_t v = d.Sample(rng);
    ASSERT_GE(v, 20);
    ASSERT_LE(v, 150);
    at_min += v == 20;
    at_max += v == 150;
  }
  EXPECT_GT(at_min, 5000);  // P(N(100, 200) <= 20) = 0.34
  EXPECT_GT(at_max, 5000);  // P(N(100, 200) >= 150) = 0.40
  LengthDist pareto;
  pareto.kind = LengthDist::Kind::kPareto;
  pareto.mean = 2;
  pareto.alpha = 1.1;
  pareto.min = 1;
  pareto.max = 64;
  for (int i = 0; i < 20000; ++i) {
    const int64_t v = pareto.Sample(rng);
    ASSERT_GE(v, 1);
    ASSERT_LE(v, 64);
  }
}

TEST(BuildWorkload, ClassSharesFollowWeightsWithinOnePercent) {
  WorkloadSpec spec;
  spec.num_requests = 100000;
  const std::vector<double> weights = {5, 3, 1.5, 0.5, 0};
  Rng rng(42);
  auto reqs = BuildWorkload(spec, weights, rng);
  ASSERT_TRUE(reqs.ok());
  std::vector<double> counts(weights.size(), 0);
  for (const Request& r : *reqs) counts.at(static_cast<size_t>(r.traffic_class))++;
  for (size_t c = 0; c < weights.size(); ++c) {
    EXPECT_NEAR(counts[c] / 100000, weights[c] / 10, 0.01) << "class " << c;
  }
  EXPECT_EQ(counts[4], 0);
}

TEST(BuildWorkload, RequestsAreNumberedSortedAndFilled) {
  WorkloadSpec spec;
  spec.num_requests = 2000;
  spec.prompt.kind = LengthDist::Kind::kLogNormal;
  spec.prompt.mean = 1000;
  spec.output.mean = 64;
  spec.sessions = 10;
  Rng rng(8);
  auto reqs = BuildWorkload(spec, {1, 1}, rng);
  ASSERT_TRUE(reqs.ok());
  ASSERT_EQ(reqs->size(), 2000u);
  std::vector<int> per_session(11, 0);
  for (size_t i = 0; i < reqs->size(); ++i) {
    const Request& r = (*reqs)[i];
    EXPECT_EQ(r.id, static_cast<RequestId>(i));
    if (i > 0) {
      EXPECT_GE(r.arrival, (*reqs)[i - 1].arrival);
    }
    EXPECT_GE(r.prompt_tokens, 1);
    EXPECT_EQ(r.output_tokens, 64);
    ASSERT_GE(r.affinity_key, 1u);
    ASSERT_LE(r.affinity_key, 10u);
    per_session[r.affinity_key]++;
  }
  for (int s = 1; s <= 10; ++s) EXPECT_GT(per_session[s], 100) << "session " << s;
}

TEST(BuildWorkload, SameSeedSameRequestsDifferentSeedDifferent) {
  WorkloadSpec spec;
  spec.num_requests = 1000;
  spec.burstiness = 0.5;
  spec.prompt.kind = LengthDist::Kind::kPareto;
  spec.prompt.mean = 700;
  spec.output.kind = LengthDist::Kind::kNormal;
  spec.output.mean = 200;
  spec.output.stddev = 50;
  spec.sessions = 4;
  auto build = [&](uint64_t seed) {
    Rng rng(seed);
    return BuildWorkload(spec, {1, 2, 3}, rng).value();
  };
  const auto a = build(123);
  const auto b = build(123);
  const auto c = build(124);
  ASSERT_EQ(a.size(), b.size());
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].arrival, b[i].arrival);
    EXPECT_EQ(a[i].prompt_tokens, b[i].prompt_tokens);
    EXPECT_EQ(a[i].output_tokens, b[i].output_tokens);
    EXPECT_EQ(a[i].traffic_class, b[i].traffic_class);
    EXPECT_EQ(a[i].affinity_key, b[i].affinity_key);
    differs = differs || a[i].arrival != c[i].arrival || a[i].prompt_tokens != c[i].prompt_tokens;
  }
  EXPECT_TRUE(differs);
  // Pinned values: a change here means every scenario's requests changed.
  EXPECT_EQ(a[0].arrival, 0.0);
  EXPECT_NEAR(a[1].arrival, 0.059898596043509042, 1e-12);
  EXPECT_NEAR(a[999].arrival, 98.104575654355202, 1e-9);
  EXPECT_EQ(a[0].prompt_tokens, 628);
  EXPECT_EQ(a[0].output_tokens, 205);
  EXPECT_EQ(a[0].traffic_class, 1);
  EXPECT_EQ(a[0].affinity_key, 4u);
}

TEST(BuildWorkload, RejectsBadSpecsAndWeights) {
  Rng rng(1);
  WorkloadSpec spec;
  EXPECT_FALSE(BuildWorkload(spec, {}, rng).ok());
  EXPECT_FALSE(BuildWorkload(spec, {0, 0}, rng).ok());
  EXPECT_FALSE(BuildWorkload(spec, {1, -1}, rng).ok());
  spec.rate = 0;
  auto r = BuildWorkload(spec, {1}, rng);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("workload.rate"), std::string::npos);
  spec.rate = 1;
  spec.schedule = {{0, 1}, {0, 2}};
  r = BuildWorkload(spec, {1}, rng);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("schedule[1].start"), std::string::npos);
  spec.schedule.clear();
  spec.prompt.min = 10;
  spec.prompt.max = 5;
  EXPECT_FALSE(BuildWorkload(spec, {1}, rng).ok());
  WorkloadSpec trace;
  trace.kind = WorkloadSpec::Kind::kAzure;
  r = BuildWorkload(trace, {1}, rng);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("workload.path"), std::string::npos);
}

}  // namespace
}  // namespace gimbal
