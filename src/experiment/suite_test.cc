#include "experiment/suite.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "experiment/report.h"
#include "experiment/runner.h"

namespace gimbal::experiment {
namespace {
namespace fs = std::filesystem;

const std::string kSource = GIMBAL_SOURCE_DIR;

bool HasNote(const SuitePlan& p, const std::string& needle) {
  for (const auto& n : p.notes) {
    if (n.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(Suite, TinyPlansEveryCombination) {
  auto suite = LoadSuite(kSource + "/configs/experiments/tiny.yaml");
  ASSERT_TRUE(suite.ok()) << suite.status().message();
  auto plan = PlanSuite(*suite);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // 2 rates x stacks x 2 seeds. The placement-only stack runs where the scenario loader accepts
  // stack placements and is skipped with a note otherwise.
  const bool placement = std::find(plan->stacks.begin(), plan->stacks.end(),
                                   "gimbal-placement-only") != plan->stacks.end();
  EXPECT_TRUE(placement || HasNote(*plan, "skipped optional stack 'gimbal-placement-only'"));
  EXPECT_EQ(plan->points.size(), 2 * 2 * plan->stacks.size());
  EXPECT_EQ(plan->stacks.size(), placement ? 5u : 4u);
  EXPECT_TRUE(HasNote(*plan, "no-such-scenario.yaml: file not found"));
  EXPECT_EQ(plan->baseline, "vllm");
  EXPECT_EQ(plan->headline, "gimbal");
  EXPECT_EQ(
      std::vector<std::string>(plan->stacks.begin(), plan->stacks.begin() + 4),
      (std::vector<std::string>{"vllm", "gimbal", "gimbal-dispatch-only", "gimbal-queue-only"}));
  std::set<std::string> ids;
  for (const auto& p : plan->points) {
    EXPECT_TRUE(ids.insert(p.id).second) << p.id;
    EXPECT_EQ(p.id, SafeName(p.id));
    ASSERT_TRUE(p.rate_fraction.has_value());
    EXPECT_DOUBLE_EQ(p.rate, *p.rate_fraction * 80);
    EXPECT_EQ(p.top_rate, p.rate == 60);
    EXPECT_EQ(p.spec->seed, p.seed);
    EXPECT_EQ(p.spec->stacks[p.stack_index].name, p.stack);
    // The rate replaces the scenario's schedule; requests = rate x duration_s.
    EXPECT_TRUE(p.spec->workload.schedule.empty());
    EXPECT_DOUBLE_EQ(p.spec->workload.rate, p.rate);
    EXPECT_EQ(p.spec->workload.num_requests, p.rate == 20 ? 60 : 180);
  }
  EXPECT_TRUE(ids.count("qwen3-8xh200__r60__gimbal-queue-only__s2"));
}

TEST(Suite, SeedsOverrideAndCount) {
  auto suite = LoadSuite(kSource + "/configs/experiments/tiny.yaml", 3);
  ASSERT_TRUE(suite.ok());
  EXPECT_EQ(suite->seeds, (std::vector<uint64_t>{1, 2, 3}));
}

Result<SuitePlan> PlanText(const std::string& text) {
  auto suite = ParseSuite(text, "s.yaml", kSource + "/configs/experiments");
  if (!suite.ok()) return suite.status();
  return PlanSuite(*suite);
}

TEST(Suite, Errors) {
  auto a = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml}]\nrate_unit: saturation\nrates: [0.5]\n");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("saturation_rate"), std::string::npos)
      << a.status().message();

  auto b = PlanText("scenarios: [{path: ../scenarios/default.yaml}]\nstacks: [nosuch]\n");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("no scenario defines stack 'nosuch'"), std::string::npos)
      << b.status().message();

  auto c = PlanText("scenarios: [{path: missing.yaml}]\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not found"), std::string::npos);

  // A non-optional stack definition with a bad policy is an error naming the policy.
  auto d = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml}]\n"
      "stacks: [{name: x, dispatch: nosuch_policy}]\n");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("nosuch_policy"), std::string::npos) << d.status().message();

  auto e = PlanText("scenarios: [{path: ../scenarios/default.yaml}]\nbogus: 1\n");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("bogus"), std::string::npos);
}

TEST(Suite, OptionalStackTheLoaderRejectsIsSkipped) {
  auto plan = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [10]\nduration_s: 2\n"
      "stacks: [vllm, {name: future, queue: fcfs, not_a_key_yet: 1, optional: true}]\n");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->stacks, std::vector<std::string>{"vllm"});
  EXPECT_TRUE(HasNote(*plan, "skipped optional stack 'future'"));
  EXPECT_TRUE(HasNote(*plan, "not_a_key_yet"));
}

TEST(Suite, ScenarioStacksWhenNoneListed) {
  auto plan = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [10]\nduration_s: 2\nseeds: [4]\n");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->points.size(), 4u);  // the scenario's four stacks
  EXPECT_EQ(plan->points[0].id, "d__r10__vllm__s4");
  EXPECT_EQ(plan->points[0].spec->workload.num_requests, 20);
}

// Points run in parallel give the same results as one at a time (Simulate is reentrant and each
// point is deterministic).
TEST(Runner, ParallelEqualsSerialAndResumes) {
  const std::string text =
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [15, 30]\nduration_s: 2\nseeds: 2\nstacks: [vllm, gimbal]\n"
      "expert_load: {bins: 5}\n";
  auto suite = ParseSuite(text, "s.yaml", kSource + "/configs/experiments");
  ASSERT_TRUE(suite.ok()) << suite.status().message();
  auto plan = PlanSuite(*suite);
  ASSERT_TRUE(plan.ok());
  const fs::path base =
      fs::temp_directory_path() / ("gimbal_runner_test_" + std::to_string(::getpid()));
  fs::remove_all(base);
  RunOptions serial{(base / "serial").string(), 1, nullptr};
  RunOptions parallel{(base / "parallel").string(), 4, nullptr};
  auto s = RunSuite(*suite, *plan, serial);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto p = RunSuite(*suite, *plan, parallel);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(s->computed, 8);
  EXPECT_EQ(p->computed, 8);
  auto load = [](const std::string& path) {
    std::ifstream in(path);
    return nlohmann::ordered_json::parse(in);
  };
  const auto rs = load(s->results_json), rp = load(p->results_json);
  ASSERT_EQ(rs["points"].size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    auto a = rs["points"][i], b = rp["points"][i];
    a.erase("wall_seconds");
    b.erase("wall_seconds");
    EXPECT_EQ(a.dump(), b.dump()) << "point " << i;
  }
  // Expert loads are measured per step and binned for the top rate's first seed only.
  for (const auto& pt : rs["points"]) {
    const bool want = pt["rate"] == 30 && pt["seed"] == 1;
    ASSERT_EQ(pt.contains("expert_load"), want) << pt["id"];
    if (!want) continue;
    const auto& el = pt["expert_load"];
    EXPECT_EQ(el["method"], "measured");
    ASSERT_EQ(el["gpu_load"].size(), 5u);
    EXPECT_EQ(el["gpu_load"][0].size(), 8u);
    EXPECT_EQ(el["max_over_mean"].size(), 5u);
    // Binned from the same step records as the summary's run total.
    EXPECT_NEAR(el["overall_max_over_mean"].get<double>(),
                pt["summary"]["expert_load_max_over_mean"].get<double>(), 1e-4);
    EXPECT_GE(el["overall_max_over_mean"].get<double>(), 1.0);
  }
  // Rerunning reuses everything.
  auto again = RunSuite(*suite, *plan, serial);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->computed, 0);
  EXPECT_EQ(again->reused, 8);
  fs::remove_all(base);
}

TEST(Report, HeadlineTableHasIntervalsOverSeeds) {
  nlohmann::ordered_json r;
  r["baseline"] = "vllm";
  r["headline"] = "gimbal";
  auto point = [](const std::string& stack, int seed, double rate, double ttft) {
    nlohmann::ordered_json p;
    p["source"] = "sim";
    p["scenario"] = "s";
    p["stack"] = stack;
    p["seed"] = seed;
    p["rate"] = rate;
    p["summary"] = {{"mean_ttft_ms", ttft},
                    {"mean_tpot_ms", 10.0},
                    {"p99_ttft_ms", 2 * ttft},
                    {"output_throughput", 100.0}};
    return p;
  };
  // Relative changes at the top rate: -40%, -45%, -42%.
  for (auto [seed, base, g] :
       std::vector<std::tuple<int, double, double>>{{1, 100, 60}, {2, 200, 110}, {3, 50, 29}}) {
    r["points"].push_back(point("vllm", seed, 10, base));
    r["points"].push_back(point("gimbal", seed, 10, g));
    r["points"].push_back(point("vllm", seed, 5, 1));  // a lower rate: ignored
    r["points"].push_back(point("gimbal", seed, 5, 1));
  }
  auto t = HeadlineTable(r);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ((*t)["rows"].size(), 1u);
  const auto& row = (*t)["rows"][0];
  EXPECT_EQ(row["stack"], "gimbal");
  EXPECT_EQ(row["n_seeds"], 3);
  const auto& m = row["metrics"]["mean_ttft_ms"];
  EXPECT_NEAR(m["mean_pct"].get<double>(), -42.333333, 1e-5);
  EXPECT_NEAR(m["half_width_pct"].get<double>(), 6.2516, 1e-3);
  EXPECT_NEAR(m["paper_pct"].get<double>(), -42.9, 1e-9);
  EXPECT_NEAR(row["metrics"]["output_throughput"]["mean_pct"].get<double>(), 0.0, 1e-12);
}

}  // namespace
}  // namespace gimbal::experiment
