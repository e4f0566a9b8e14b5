// End to end in the simulator (issue 3): on a bursty suite scenario Gimbal's stack beats round
// robin's p99 TTFT by a margin. The relation is asserted, not exact figures: the margin must hold
// for the median over three seeds and for each seed with a looser bound.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/scenario.h"
#include "core/random.h"
#include "sim/simulator.h"
#include "workload/workload.h"

namespace gimbal {
namespace {

std::string SuiteFile(const std::string& name) {
  return (std::filesystem::path(GIMBAL_SOURCE_DIR) / "configs/scenarios/suite" / (name + ".yaml"))
      .string();
}

const sim::StackSpec& StackNamed(const Scenario& s, const std::string& name) {
  for (const auto& st : s.stacks) {
    if (st.name == name) return st;
  }
  ADD_FAILURE() << "no stack '" << name << "' in " << s.file;
  return s.stacks.front();
}

double P99Ttft(const Scenario& s, const std::vector<Request>& reqs, const std::string& stack) {
  auto r = sim::Simulate(s.cluster, StackNamed(s, stack), reqs, s.options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return 0;
  EXPECT_EQ(r->summary["completed"].get<int64_t>(), static_cast<int64_t>(reqs.size()));
  return r->summary["p99_ttft_ms"].get<double>();
}

TEST(SuiteTest, EveryScenarioOfTheSuiteLoadsWithAllStacks) {
  const std::filesystem::path dir =
      std::filesystem::path(GIMBAL_SOURCE_DIR) / "configs/scenarios/suite";
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".yaml") continue;
    auto s = LoadScenario(f.path().string());
    ASSERT_TRUE(s.ok()) << f.path() << ": " << s.status().message();
    ASSERT_GE(s->stacks.size(), 11u) << f.path();
    EXPECT_EQ(s->stacks.front().name, "vllm") << f.path() << ": the reference stack comes first";
    n++;
  }
  EXPECT_GE(n, 15);
}

TEST(SuiteTest, GimbalBeatsRoundRobinP99TtftOnBurstyTraffic) {
  // The medium-load bursty scenario of the 8 x H200 shape, shortened to keep the test fast.
  auto sc = LoadScenario(SuiteFile("h200x8-medium-bursty"), {"workload.num_requests=1500"});
  ASSERT_TRUE(sc.ok()) << sc.status().message();
  std::vector<double> ratios;
  for (uint64_t seed : {1u, 2u, 3u}) {
    Scenario s = *sc;
    s.seed = seed;
    s.options.seed = seed;
    Rng rng = Rng(seed).Fork(0x3017);
    auto reqs = BuildWorkload(s.workload, s.class_weights(), rng);
    ASSERT_TRUE(reqs.ok()) << reqs.status().message();
    const double gimbal = P99Ttft(s, *reqs, "gimbal");
    const double rr = P99Ttft(s, *reqs, "round-robin");
    ASSERT_GT(rr, 0);
    ratios.push_back(gimbal / rr);
    EXPECT_LT(gimbal, 0.95 * rr) << "seed " << seed << ": gimbal p99 TTFT " << gimbal
                                 << " ms, round robin " << rr << " ms";
  }
  std::sort(ratios.begin(), ratios.end());
  EXPECT_LT(ratios[1], 0.85) << "median p99 TTFT ratio gimbal / round robin";
}

}  // namespace
}  // namespace gimbal
