#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "core/random.h"
#include "sim/sim_test_util.h"

namespace gimbal::sim {
namespace {

std::vector<Request> Workload(int n, double rate, uint64_t seed) {
  return testing::PoissonWorkload(n, rate, seed, 50, 2000, 1, 200);
}

ClusterSpec Spec() {
  ClusterSpec c = testing::TinyCluster(4);
  c.classes = {{"a", 1, 1.2}, {"b", 1, 1.2}};
  return c;
}

TEST(SimulatorTest, SameSeedGivesIdenticalResults) {
  const auto reqs = Workload(300, 40, 5);
  StackSpec stack;
  stack.name = "p2c";
  stack.dispatch = "power_of_two";  // uses the random stream
  SimOptions opt;
  opt.seed = 9;
  auto a = Simulate(Spec(), stack, reqs, opt);
  auto b = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
  EXPECT_EQ(a->summary["completed"], 300);
}

TEST(SimulatorTest, LoneRequestTtftIsTheCostModelsPrefillStep) {
  ClusterSpec spec = testing::TinyCluster(1);
  std::vector<Request> reqs(1);
  reqs[0].prompt_tokens = 1000;
  reqs[0].output_tokens = 1;
  reqs[0].arrival = 2.0;
  StackSpec stack;
  stack.dispatch = "round_robin";
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(spec, stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // By hand: one rank, no all-to-all; every expert is active (each expects > 30 tokens).
  CostModel cm(spec.model, spec.hardware);
  RankBatch b;
  b.tokens = 1000;
  b.sequences = 1;
  b.logits = 1;
  b.attn_pairs = 1000.0 * (0 + 1001.0 / 2);
  b.kv_read_tokens = 1000;
  const int L = spec.model.layers;
  const double expected = L * cm.AttentionTime(b) +
                          L * cm.ExpertTime(1000.0 * spec.model.top_k, spec.model.experts) +
                          cm.HeadTime(b) + cm.StepOverhead(1);
  const RequestRecord& rec = r->requests[0];
  EXPECT_NEAR(rec.first_token - rec.arrival, expected, 1e-12);
  EXPECT_NEAR(r->summary["mean_ttft_ms"].get<double>(), expected * 1e3, 1e-9);
}

TEST(SimulatorTest, EveryRequestIsAccountedFor) {
  const auto reqs = Workload(200, 100, 6);
  StackSpec stack;
  stack.dispatch = "vllm";
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok());
  int64_t dispatched = 0;
  for (const auto& e : r->summary["engines"]) dispatched += e["dispatched"].get<int64_t>();
  EXPECT_EQ(dispatched, 200);
  for (const auto& rec : r->requests) {
    ASSERT_TRUE(rec.completed());
    EXPECT_GE(rec.first_token, rec.arrival);
    EXPECT_GE(rec.finish, rec.first_token);
    EXPECT_EQ(rec.output_tokens, reqs[static_cast<size_t>(rec.id)].output_tokens);
  }
}

TEST(SimulatorTest, StepRecordsCarryPerGpuExpertLoadThatAddsUpToTheSummary) {
  const auto reqs = Workload(200, 100, 8);
  StackSpec stack;
  stack.dispatch = "vllm";
  SimOptions opt;
  opt.keep_steps = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(static_cast<int64_t>(r->steps.size()), r->num_steps);
  double sum_max = 0, sum_mean = 0;
  for (const StepRecord& s : r->steps) {
    ASSERT_EQ(s.gpu_load.size(), 4u);
    double total = 0, top = 0;
    for (double v : s.gpu_load) {
      EXPECT_GE(v, 0);
      total += v;
      top = std::max(top, v);
    }
    // The mean GPU's load summed over layers is the mean of the per-GPU sums; the per-layer maxima
    // add up to at least the largest per-GPU sum.
    EXPECT_NEAR(s.load_mean, total / 4, 1e-6 * std::max(1.0, total));
    EXPECT_GE(s.load_max, top * (1 - 1e-9));
    EXPECT_GE(s.load_max, s.load_mean * (1 - 1e-9));
    sum_max += s.load_max;
    sum_mean += s.load_mean;
  }
  ASSERT_GT(sum_mean, 0);
  EXPECT_NEAR(sum_max / sum_mean, r->summary["expert_load_max_over_mean"].get<double>(), 1e-9);
  // The class mix differs per engine, so some steps are imbalanced.
  EXPECT_GT(sum_max / sum_mean, 1.0);
}

TEST(SimulatorTest, StepRecordsShowARebalanceLoweringThePeakGpuLoad) {
  ClusterSpec spec = Spec();
  spec.classes = {{"hot", 1, 2.0}};  // steep popularity: contiguous placement is imbalanced
  const auto reqs = Workload(400, 100, 9);
  StackSpec stack;
  stack.dispatch = "round_robin";
  stack.placement.policy = "eplb";
  stack.placement.interval_steps = 50;
  stack.placement.stats.window_steps = 50;
  SimOptions opt;
  opt.keep_steps = true;
  auto r = Simulate(spec, stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_GT(r->steps.size(), 100u);
  ASSERT_GE(r->summary["rebalances"].get<int64_t>(), 1);
  double max0 = 0, mean0 = 0, max1 = 0, mean1 = 0;
  for (size_t i = 0; i < r->steps.size(); ++i) {
    if (i < 50) {
      max0 += r->steps[i].load_max;
      mean0 += r->steps[i].load_mean;
    } else {
      max1 += r->steps[i].load_max;
      mean1 += r->steps[i].load_mean;
    }
  }
  ASSERT_GT(mean0, 0);
  ASSERT_GT(mean1, 0);
  EXPECT_LT(max1 / mean1, max0 / mean0) << "before " << max0 / mean0 << " after " << max1 / mean1;
}

TEST(SimulatorTest, MaxTokensDefaultsToTheOutputLength) {
  const auto reqs = Workload(200, 300, 12);
  auto explicit_caps = reqs;
  for (auto& r : explicit_caps) r.max_tokens = r.output_tokens;
  StackSpec stack;
  stack.dispatch = "vllm_kv";
  auto a = Simulate(Spec(), stack, reqs, {});
  auto b = Simulate(Spec(), stack, explicit_caps, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
}

TEST(SimulatorTest, MaxInflightHidesFullEnginesAndRefusesWhenAllAreFull) {
  // 40 requests at once on 4 engines that take 3 each: 12 are served, 28 refused (the router
  // answers 429), and none is dispatched to an engine already at its limit.
  auto reqs = Workload(40, 1, 13);
  for (auto& r : reqs) r.arrival = 0;
  StackSpec stack;
  stack.dispatch = "round_robin";
  stack.max_inflight = 3;
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->summary["completed"].get<int64_t>(), 12);
  EXPECT_EQ(r->summary["failed"].get<int64_t>(), 28);
  for (const auto& e : r->summary["engines"]) EXPECT_EQ(e["dispatched"].get<int64_t>(), 3);
  for (const auto& rec : r->requests) EXPECT_EQ(rec.completed(), rec.engine >= 0);
  // The default (0) is no limit: everything is served.
  stack.max_inflight = 0;
  auto all = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->summary["completed"].get<int64_t>(), 40);
}

TEST(SimulatorTest, BadInputIsRejectedWithAReason) {
  auto reqs = Workload(3, 1, 7);
  std::swap(reqs[0], reqs[2]);
  StackSpec stack;
  auto r = Simulate(Spec(), stack, reqs, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sorted by arrival"), std::string::npos);
  stack.dispatch = "no_such_policy";
  auto u = Simulate(Spec(), stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("round_robin"), std::string::npos);  // lists valid names
  stack.dispatch = "vllm";
  auto capped = Workload(3, 1, 7);
  capped[1].output_tokens = 10;
  capped[1].max_tokens = 9;
  auto m = Simulate(Spec(), stack, capped, {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("max_tokens"), std::string::npos) << m.status().ToString();
  stack.max_inflight = -1;
  auto n = Simulate(Spec(), stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("max_inflight"), std::string::npos) << n.status().ToString();
  stack.max_inflight = 0;
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto early = Workload(3, 1, 7);
    early[0].arrival = bad;  // the event queue refuses a past time; Simulate says so first
    auto a = Simulate(Spec(), stack, early, {});
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_NE(a.status().message().find("request 0: arrival must be a finite time"),
              std::string::npos)
        << a.status().ToString();
  }
}

}  // namespace
}  // namespace gimbal::sim
