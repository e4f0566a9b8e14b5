#include <algorithm>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "workload/workload.h"
#include "workload/workload_test_util.h"

namespace gimbal {
namespace {

using workload_test::ExpectError;
using workload_test::Parse;

TEST(ParseWorkloadSpec, ReadsASyntheticWorkload) {
  auto r = Parse(R"(
workload:
  kind: synthetic
  num_requests: 500
  rate: 12.5
  burstiness: 0.5
  prompt: {dist: lognormal, mean: 2000, sigma: 0.9, max: 16000}
  output: {dist: uniform, low: 10, high: 300}
  sessions: 32
)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, WorkloadSpec::Kind::kSynthetic);
  EXPECT_EQ(r->num_requests, 500);
  EXPECT_EQ(r->rate, 12.5);
  EXPECT_EQ(r->burstiness, 0.5);
  EXPECT_EQ(r->prompt.kind, LengthDist::Kind::kLogNormal);
  EXPECT_EQ(r->prompt.mean, 2000);
  EXPECT_EQ(r->prompt.sigma, 0.9);
  EXPECT_EQ(r->prompt.max, 16000);
  EXPECT_EQ(r->prompt.min, 1);
  EXPECT_EQ(r->output.kind, LengthDist::Kind::kUniform);
  EXPECT_EQ(r->output.low, 10);
  EXPECT_EQ(r->output.high, 300);
  EXPECT_EQ(r->sessions, 32);
}

TEST(ParseWorkloadSpec, DefaultsShorthandInfinityAndSchedule) {
  auto r = Parse("workload:\n  rate: inf\n  prompt: 128\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(std::isinf(r->rate));
  EXPECT_EQ(r->prompt.kind, LengthDist::Kind::kFixed);
  EXPECT_EQ(r->prompt.mean, 128);
  EXPECT_EQ(r->num_requests, 1000);
  EXPECT_TRUE(std::isinf(Parse("workload: {rate: .inf}")->rate));
  auto s = Parse(R"(
workload:
  schedule:
    - {start: 0, rate: 5}
    - {start: 60, rate: 20}
    - {start: 120, rate: inf}
  output: {dist: pareto, mean: 300, alpha: 2.5, min: 4, max: 4096}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->schedule.size(), 3u);
  EXPECT_EQ(s->schedule[1].start, 60);
  EXPECT_EQ(s->schedule[1].rate, 20);
  EXPECT_TRUE(std::isinf(s->schedule[2].rate));
  EXPECT_EQ(s->output.kind, LengthDist::Kind::kPareto);
  EXPECT_EQ(s->output.alpha, 2.5);
  EXPECT_EQ(s->output.min, 4);
}

TEST(ParseWorkloadSpec, ReadsTracesAndResolvesRelativePaths) {
  auto r = Parse(R"(
workload:
  kind: mooncake
  path: ../traces/m.jsonl
  time_scale: 0.5
  max_requests: 100
  start_offset: 30
)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, WorkloadSpec::Kind::kMooncake);
  EXPECT_EQ(r->path, "/traces/m.jsonl");
  EXPECT_EQ(r->time_scale, 0.5);
  EXPECT_EQ(r->max_requests, 100);
  EXPECT_EQ(r->start_offset, 30);
  EXPECT_EQ(Parse("workload: {kind: azure, path: /abs/a.csv}")->path, "/abs/a.csv");
  EXPECT_EQ(Parse("workload: {kind: burstgpt, path: b.csv}", "")->path, "b.csv");
}

TEST(ParseWorkloadSpec, ErrorsNameTheKey) {
  ExpectError("workload:\n  rate: fast\n",
              {"s.yaml:2:", "'workload.rate'", "inf or a number of requests per second", "'fast'"});
  ExpectError("workload:\n  rate: 0\n", {"'workload.rate'"});
  ExpectError("workload:\n  rat: 3\n", {"'workload.rat'", "unknown key"});
  ExpectError("workload:\n  burstiness: 0\n", {"'workload.burstiness'", "in [0.001, 1000]"});
  ExpectError("workload:\n  num_requests: 0\n", {"'workload.num_requests'"});
  ExpectError("workload:\n  kind: replay\n",
              {"'workload.kind'", "synthetic, azure, mooncake, burstgpt"});
  ExpectError("workload:\n  sessions: -1\n", {"'workload.sessions'"});
  ExpectError("workload:\n  schedule: [{start: 5, rate: 1}]\n",
              {"'workload.schedule[0].start'", "start at 0"});
  ExpectError("workload:\n  schedule: [{start: 0, rate: 1}, {start: 0, rate: 2}]\n",
              {"'workload.schedule[1].start'", "increasing"});
  ExpectError("workload:\n  schedule: [{start: 0, rate: -1}]\n", {"'workload.schedule[0].rate'"});
  ExpectError("workload:\n  schedule: [{start: 0, rat: 1}]\n",
              {"'workload.schedule[0].rat'", "unknown key"});
  ExpectError("workload:\n  rate: 1\n  schedule: [{start: 0, rate: 1}]\n",
              {"'workload.schedule'", "not both"});
  ExpectError("workload:\n  prompt: {dist: normal, mean: 10}\n",
              {"'workload.prompt.stddev'", "missing"});
  ExpectError("workload:\n  prompt: {dist: lognormal, mean: 10, stddev: 3}\n",
              {"'workload.prompt.stddev'", "unknown key", "sigma"});
  ExpectError("workload:\n  prompt: {dist: gauss}\n", {"'workload.prompt.dist'"});
  ExpectError("workload:\n  output: {dist: fixed, mean: 10, min: 20, max: 5}\n",
              {"'workload.output.min'", "greater than max"});
  ExpectError("workload:\n  output: {dist: pareto, mean: 10, alpha: 1}\n",
              {"'workload.output.alpha'", "> 1"});
  ExpectError("workload:\n  output: {dist: uniform, low: 10, high: 5}\n",
              {"'workload.output.low'"});
  ExpectError("workload:\n  output: [1, 2]\n", {"'workload.output'"});
  ExpectError("workload:\n  kind: azure\n", {"'workload.path'", "missing"});
  ExpectError("workload:\n  kind: azure\n  path: a.csv\n  rate: 3\n",
              {"'workload.rate'", "only to kind synthetic"});
  ExpectError("workload:\n  path: a.csv\n", {"'workload.path'", "only to trace workloads"});
  ExpectError("workload:\n  kind: azure\n  path: a.csv\n  time_scale: 0\n",
              {"'workload.time_scale'"});
  ExpectError("workload:\n  kind: azure\n  path: a.csv\n  max_requests: -2\n",
              {"'workload.max_requests'"});
  ExpectError("workload: 5\n", {"'workload'", "expected a map"});
}

TEST(ParseWorkloadSpec, HostileValuesFailUpFrontWithFileLineAndKey) {
  ExpectError("workload:\n  num_requests: 1000000000000\n",
              {"s.yaml:2:17: 'workload.num_requests'", "in [1, 10000000]", "'1000000000000'"});
  ExpectError("workload:\n  rate: 1e-9\n",
              {"s.yaml:2:9: 'workload.rate'", "[0.001, 1000000000]", "'1e-9'"});
  ExpectError("workload:\n  rate: 1e300\n", {"'workload.rate'", "'1e300'"});
  ExpectError("workload:\n  rate: nan\n", {"'workload.rate'", "'nan'"});
  ExpectError("workload:\n  schedule: [{start: 0, rate: 1e-7}]\n", {"'workload.schedule[0].rate'"});
  ExpectError("workload:\n  schedule: [{start: 0, rate: 1}, {start: 1e12, rate: 2}]\n",
              {"'workload.schedule[1].start'"});
  ExpectError("workload:\n  burstiness: 1e-300\n", {"'workload.burstiness'"});
  ExpectError("workload:\n  burstiness: .inf\n", {"'workload.burstiness'"});
  // Each value in range, but 10M requests at 0.01/s would take 31 years of simulated time.
  ExpectError("workload:\n  num_requests: 10000000\n  rate: 0.01\n",
              {"s.yaml:2:", "'workload.num_requests'", "366 days"});
  ExpectError(
      "workload:\n  num_requests: 1000000\n  schedule: [{start: 0, rate: 100}, "
      "{start: 10, rate: 0.01}]\n",
      {"'workload.num_requests'", "366 days"});
  ExpectError("workload:\n  output: {dist: fixed, mean: 10, max: 99999999999}\n",
              {"'workload.output.max'", "1073741824"});
  ExpectError("workload:\n  kind: azure\n  path: a.csv\n  time_scale: 1e9\n",
              {"'workload.time_scale'", "in [1e-06, 1000000]"});
  ExpectError("workload:\n  kind: azure\n  path: a.csv\n  max_requests: 1000000000000\n",
              {"'workload.max_requests'", "10000000"});
  // The bounds themselves are accepted.
  EXPECT_TRUE(Parse("workload:\n  num_requests: 10000000\n  rate: inf\n").ok());
  EXPECT_TRUE(Parse("workload:\n  num_requests: 2\n  rate: 0.001\n").ok());
}

TEST(ValidateWorkloadSpec, BoundsSpecsBuiltInCode) {
  WorkloadSpec s;
  EXPECT_TRUE(ValidateWorkloadSpec(s).ok());
  s.num_requests = 1'000'000'000'000;
  EXPECT_NE(ValidateWorkloadSpec(s).message().find("workload.num_requests"), std::string::npos);
  s.num_requests = 1000;
  s.rate = 1e-9;
  EXPECT_NE(ValidateWorkloadSpec(s).message().find("workload.rate"), std::string::npos);
  s.rate = std::nan("");
  EXPECT_FALSE(ValidateWorkloadSpec(s).ok());
  s.rate = 10;
  s.burstiness = 1e-9;
  EXPECT_NE(ValidateWorkloadSpec(s).message().find("workload.burstiness"), std::string::npos);
  s.burstiness = 1;
  s.schedule = {{0, 1}, {std::numeric_limits<double>::infinity(), 2}};
  EXPECT_FALSE(ValidateWorkloadSpec(s).ok());
  s.schedule.clear();
  s.num_requests = 10'000'000;
  s.rate = 0.01;
  EXPECT_NE(ValidateWorkloadSpec(s).message().find("366 days"), std::string::npos);
  WorkloadSpec t;
  t.kind = WorkloadSpec::Kind::kMooncake;
  t.path = "x.jsonl";
  t.time_scale = 1e300;
  EXPECT_NE(ValidateWorkloadSpec(t).message().find("workload.time_scale"), std::string::npos);
}

TEST(ExpectedSyntheticSpan, FollowsRateAndSchedule) {
  WorkloadSpec s;
  s.num_requests = 101;
  s.rate = 10;
  EXPECT_DOUBLE_EQ(ExpectedSyntheticSpan(s), 10.0);
  s.rate = std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(ExpectedSyntheticSpan(s), 0.0);
  // 100 gaps: 50 in [0, 5) at 10/s, then 50 at 1/s from t = 5.
  s.schedule = {{0, 10}, {5, 1}};
  EXPECT_DOUBLE_EQ(ExpectedSyntheticSpan(s), 55.0);
  s.schedule = {{0, 100}, {5, 1}};
  EXPECT_DOUBLE_EQ(ExpectedSyntheticSpan(s), 1.0);
  s.schedule = {{0, 1}, {5, std::numeric_limits<double>::infinity()}};
  EXPECT_DOUBLE_EQ(ExpectedSyntheticSpan(s), 5.0);
}

TEST(ParseWorkloadSpec, SpecDrivesBuildWorkloadEndToEnd) {
  const std::string dir = std::string(GIMBAL_SOURCE_DIR) + "/examples";
  auto doc = YamlReader::FromString(
      "workload: {kind: burstgpt, path: traces/burstgpt_sample.csv, max_requests: 50}", "s.yaml");
  auto spec = ParseWorkloadSpec(doc->Child("workload"), dir);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  Rng rng(1);
  auto reqs = BuildWorkload(*spec, {1}, rng);
  ASSERT_TRUE(reqs.ok()) << reqs.status().ToString();
  EXPECT_EQ(reqs->size(), 50u);
}

TEST(ParseWorkloadSpec, MaxTokensDefaultsToTheOutputLengthOrCapsIt) {
  Rng rng(3);
  auto plain = Parse("workload: {num_requests: 300, output: {dist: uniform, low: 1, high: 2000}}");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->max_tokens, 0);
  auto reqs = BuildWorkload(*plain, {1}, rng);
  ASSERT_TRUE(reqs.ok());
  int64_t longest = 0;
  for (const Request& r : *reqs) {
    EXPECT_EQ(r.max_tokens, r.output_tokens);  // what `vllm bench serve` sends
    longest = std::max(longest, r.output_tokens);
  }
  ASSERT_GT(longest, 1000);

  auto capped = Parse(
      "workload: {num_requests: 300, output: {dist: uniform, low: 1, high: 2000}, "
      "max_tokens: 1000}");
  ASSERT_TRUE(capped.ok()) << capped.status().ToString();
  EXPECT_EQ(capped->max_tokens, 1000);
  Rng rng2(3);
  auto creqs = BuildWorkload(*capped, {1}, rng2);
  ASSERT_TRUE(creqs.ok());
  ASSERT_EQ(creqs->size(), reqs->size());
  int64_t cut = 0;
  for (size_t i = 0; i < creqs->size(); ++i) {
    const Request& c = (*creqs)[i];
    EXPECT_EQ(c.max_tokens, 1000);
    EXPECT_EQ(c.output_tokens, std::min<int64_t>((*reqs)[i].output_tokens, 1000));
    cut += (*reqs)[i].output_tokens > 1000;
  }
  EXPECT_GT(cut, 0);

  // Trace workloads take the cap too.
  const std::string dir = std::string(GIMBAL_SOURCE_DIR) + "/examples";
  auto doc = YamlReader::FromString(
      "workload: {kind: burstgpt, path: traces/burstgpt_sample.csv, max_requests: 20, "
      "max_tokens: 4096}",
      "s.yaml");
  auto trace = ParseWorkloadSpec(doc->Child("workload"), dir);
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  Rng rng3(1);
  auto treqs = BuildWorkload(*trace, {1}, rng3);
  ASSERT_TRUE(treqs.ok()) << treqs.status().ToString();
  for (const Request& r : *treqs) EXPECT_EQ(r.max_tokens, 4096);
}

TEST(ParseWorkloadSpec, BadMaxTokensIsAClearError) {
  ExpectError("workload:\n  max_tokens: 0\n", {"s.yaml:2:", "'workload.max_tokens'"});
  ExpectError("workload:\n  max_tokens: -5\n", {"'workload.max_tokens'"});
  ExpectError("workload:\n  max_tokens: lots\n", {"'workload.max_tokens'", "'lots'"});
  ExpectError("workload:\n  max_tokens: 1e12\n", {"'workload.max_tokens'"});
  WorkloadSpec s;
  s.max_tokens = -1;
  Status st = ValidateWorkloadSpec(s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("workload.max_tokens"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace gimbal
