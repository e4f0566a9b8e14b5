#include "experiment/suite.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>
#include <vector>

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

  // A suite's scenario files are read as every config file is: a second document, and a comma
  // where a node should start (which made yaml-cpp 0.7 loop), are errors naming the line.
  for (const auto& [text, want] : std::vector<std::pair<std::string, std::string>>{
           {"engine: {}\n---\nengine: {}\n", ":3: a second YAML document"},
           {",\n", ":1:1: malformed YAML: unexpected ','"}}) {
    const std::string path = ::testing::TempDir() + "/suite_scenario_doc.yaml";
    std::ofstream(path) << text;
    auto r = PlanText("scenarios: [{path: " + path + "}]\n");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(path + want), std::string::npos) << r.status().message();
  }

  // A non-optional stack definition with a bad policy is an error naming the policy.
  auto d = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml}]\n"
      "stacks: [{name: x, dispatch: nosuch_policy}]\n");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("nosuch_policy"), std::string::npos) << d.status().message();

  // Seeds are integers read whole (as doubles, 2^53 + 1 became 2^53, 1e300 wrapped, and two
  // different seeds could be reported as one listed twice); durations and rates are bounded.
  for (const char* bad : {"seeds: [1e300]", "seeds: [18446744073709551616]", "seeds: [1.5]",
                          "seeds: [-1]", "seeds: {a: 1}", "duration_s: 1e300", "rates: [1e300]"}) {
    auto h = PlanText(std::string("scenarios: [{path: ../scenarios/default.yaml}]\n") + bad + "\n");
    ASSERT_FALSE(h.ok()) << bad;
    EXPECT_NE(h.status().message().find(std::string(bad).substr(0, 5)), std::string::npos)
        << h.status().message();
  }
  {
    auto big = PlanText(
        "scenarios: [{path: ../scenarios/default.yaml}]\nrates: [10]\nduration_s: 1\n"
        "seeds: [9007199254740993, 9007199254740992]\nstacks: [vllm]\n");
    ASSERT_TRUE(big.ok()) << big.status().ToString();
    EXPECT_EQ(big->points.size(), 2u);
  }

  // A directory or a device is refused with a message (a directory threw from the reader).
  for (const char* path : {"../scenarios", "/dev/zero"}) {
    auto f = PlanText(std::string("scenarios: [{path: ") + path + "}]\n");
    ASSERT_FALSE(f.ok()) << path;
    EXPECT_NE(f.status().message().find("expected a"), std::string::npos) << f.status().message();
  }
  for (const char* path : {"/dev/zero", "/tmp"}) {
    auto g = LoadSuite(path);
    ASSERT_FALSE(g.ok()) << path;
    EXPECT_NE(g.status().message().find("suite file"), std::string::npos) << g.status().message();
  }

  auto e = PlanText("scenarios: [{path: ../scenarios/default.yaml}]\nbogus: 1\n");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("bogus"), std::string::npos);

  // 30 rates x 2 stacks x 10,000 seeds: refused before the points are made (4 million of them
  // took the memory of the machine).
  std::string rates;
  for (int i = 1; i <= 30; ++i) rates += (i > 1 ? ", " : "") + std::to_string(i);
  auto f = PlanText("scenarios: [{path: ../scenarios/default.yaml}]\nrates: [" + rates +
                    "]\nduration_s: 1\nseeds: 10000\nstacks: [vllm, gimbal]\n");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("more than 100000 points"), std::string::npos)
      << f.status().message();
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
  // One point per stack of the scenario (its file is edited now and then: count, don't pin).
  ASSERT_GE(plan->stacks.size(), 2u);
  EXPECT_EQ(plan->points.size(), plan->stacks.size());
  EXPECT_EQ(plan->points[0].id, "d__r10__vllm__s4");
  EXPECT_EQ(plan->points[0].spec->workload.num_requests, 20);
}

const sim::StackSpec* FindStack(const Point& p, const std::string& name) {
  for (const auto& st : p.spec->stacks) {
    if (st.name == name) return &st;
  }
  return nullptr;
}

TEST(Suite, TunedBaselineExpandsIntoMembersAfterTheStacks) {
  auto plan = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [10]\nduration_s: 2\n"
      "stacks:\n"
      "  - vllm\n"
      "  - {name: v2, dispatch: {policy: vllm, snapshot_interval_ms: 100}, queue: gimbal,\n"
      "     engine: {prefill_schedule_interval: 2, enable_prefix_caching: false}}\n"
      "  - gimbal\n"
      "tuned_baseline:\n"
      "  - {name: vllm-best, stack: vllm,\n"
      "     grid: {max_num_batched_tokens: [1024, 4096], prefill_schedule_interval: [1, 4]}}\n"
      "  - {name: v2-best, stack: v2, grid: {max_num_seqs: [256], block_size: [32]}}\n");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->stacks, (std::vector<std::string>{"vllm", "v2", "gimbal", "vllm-best/b1024-i1",
                                                    "vllm-best/b1024-i4", "vllm-best/b4096-i1",
                                                    "vllm-best/b4096-i4", "v2-best/s256-bs32"}));
  EXPECT_EQ(plan->points.size(), 8u);
  EXPECT_EQ(plan->baseline, "vllm");
  EXPECT_EQ(plan->headline, "gimbal");
  ASSERT_EQ(plan->tuned.size(), 2u);
  EXPECT_EQ(plan->tuned[0].name, "vllm-best");
  EXPECT_EQ(plan->tuned[0].stack, "vllm");
  EXPECT_EQ(plan->tuned[0].members.size(), 4u);
  EXPECT_EQ(plan->tuned[0].settings[1],
            (TunedSetting{{"max_num_batched_tokens", "1024"}, {"prefill_schedule_interval", "4"}}));
  const Point& p = plan->points.front();
  const EngineConfig& scenario_engine = p.spec->cluster.engine;
  ASSERT_NE(scenario_engine.max_num_batched_tokens, 4096);  // so the member's value shows
  ASSERT_NE(scenario_engine.max_num_seqs, 256);
  // A member is its stack with the point's engine settings; the rest stays the scenario's.
  const sim::StackSpec* vllm = FindStack(p, "vllm");
  const sim::StackSpec* m = FindStack(p, "vllm-best/b4096-i4");
  ASSERT_TRUE(vllm != nullptr && m != nullptr);
  EXPECT_FALSE(vllm->engine.has_value());
  ASSERT_TRUE(m->engine.has_value());
  EXPECT_EQ(m->engine->max_num_batched_tokens, 4096);
  EXPECT_EQ(m->engine->prefill_schedule_interval, 4);
  EXPECT_EQ(m->engine->max_num_seqs, scenario_engine.max_num_seqs);
  EXPECT_EQ(m->engine->enable_prefix_caching, scenario_engine.enable_prefix_caching);
  EXPECT_EQ(m->dispatch, vllm->dispatch);
  EXPECT_EQ(m->queue, vllm->queue);
  EXPECT_DOUBLE_EQ(m->snapshot_interval, vllm->snapshot_interval);
  // Merged over the stack's own engine map: v2's keys stay unless the grid sets them.
  const sim::StackSpec* v2 = FindStack(p, "v2-best/s256-bs32");
  ASSERT_TRUE(v2 != nullptr && v2->engine.has_value());
  EXPECT_EQ(v2->engine->max_num_seqs, 256);
  EXPECT_EQ(v2->engine->block_size, 32);
  EXPECT_EQ(v2->engine->prefill_schedule_interval, 2);
  EXPECT_FALSE(v2->engine->enable_prefix_caching);
  EXPECT_EQ(v2->queue, "gimbal");
  EXPECT_EQ(v2->engine->max_num_batched_tokens, scenario_engine.max_num_batched_tokens);
  std::set<std::string> ids;
  for (const auto& pt : plan->points) ids.insert(pt.id);
  EXPECT_TRUE(ids.count("d__r10__vllm-best-b4096-i4__s1"));
  EXPECT_TRUE(ids.count("d__r10__v2-best-s256-bs32__s1"));
}

TEST(Suite, TunedMembersRunAtTheTopRateOnly) {
  auto plan = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [5, 10]\nduration_s: 2\nseeds: [1, 2]\n"
      "stacks: [vllm, gimbal]\n"
      "tuned_baseline: {name: vllm-best, stack: vllm, grid: {max_num_seqs: [256, 1024]}}\n");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // vllm and gimbal at both rates and seeds (8 points), the two members at rate 10 only (4).
  ASSERT_EQ(plan->points.size(), 12u);
  int members = 0;
  for (const auto& p : plan->points) {
    if (p.stack.find('/') == std::string::npos) continue;
    members++;
    EXPECT_EQ(p.rate, 10) << p.id;
    EXPECT_TRUE(p.top_rate) << p.id;
  }
  EXPECT_EQ(members, 4);
}

TEST(Suite, TunedBaselineOfAScenarioStackWhenNoneListed) {
  auto plan = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\n"
      "rates: [10]\nduration_s: 2\n"
      "tuned_baseline: {name: best, stack: vllm, grid: {max_num_seqs: [64, 128]}}\n");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // The scenario's own stacks, then two members.
  const size_t n = plan->stacks.size();
  ASSERT_GE(n, 3u);
  EXPECT_EQ(plan->stacks[0], "vllm");
  EXPECT_EQ(plan->stacks[n - 2], "best/s64");
  EXPECT_EQ(plan->stacks[n - 1], "best/s128");
  EXPECT_EQ(plan->points.size(), n);
  EXPECT_EQ(plan->headline, "gimbal");
  const sim::StackSpec* m = FindStack(plan->points.front(), "best/s128");
  ASSERT_TRUE(m != nullptr && m->engine.has_value());
  EXPECT_EQ(m->engine->max_num_seqs, 128);
}

TEST(Suite, TunedSettingsAndNames) {
  TunedBaseline tb{"vllm-best",
                   "vllm",
                   {{"max_num_batched_tokens", {"1024", "2048", "4096", "8192", "16384"}},
                    {"prefill_schedule_interval", {"1", "2", "4"}},
                    {"max_num_seqs", {"256", "1024"}}}};
  const auto settings = TunedSettings(tb);
  ASSERT_EQ(settings.size(), 30u);
  EXPECT_EQ(TunedMemberName(tb.name, settings.front()), "vllm-best/b1024-i1-s256");
  EXPECT_EQ(TunedMemberName(tb.name, settings[1]), "vllm-best/b1024-i1-s1024");
  EXPECT_EQ(TunedMemberName(tb.name, settings.back()), "vllm-best/b16384-i4-s1024");
  EXPECT_EQ(
      TunedMemberName("g", {{"enable_prefix_caching", "false"}, {"gpu_memory_utilization", "0.9"}}),
      "g/pcfalse-mem0.9");
  std::set<std::string> names;
  for (const auto& s : settings) names.insert(TunedMemberName(tb.name, s));
  EXPECT_EQ(names.size(), 30u);
}

TEST(Suite, ReadmeAndPaperSuitesCarryTheFullVllmGrid) {
  for (const char* f : {"readme.yaml", "paper.yaml"}) {
    auto suite = LoadSuite(kSource + "/configs/experiments/" + f);
    ASSERT_TRUE(suite.ok()) << f << ": " << suite.status().message();
    ASSERT_EQ(suite->tuned.size(), 1u) << f;
    const TunedBaseline& tb = suite->tuned[0];
    EXPECT_EQ(tb.name, "vllm-best");
    EXPECT_EQ(tb.stack, "vllm");
    ASSERT_EQ(tb.grid.size(), 3u);
    EXPECT_EQ(tb.grid[0].values,
              (std::vector<std::string>{"1024", "2048", "4096", "8192", "16384"}));
    EXPECT_EQ(tb.grid[1].values, (std::vector<std::string>{"1", "2", "4"}));
    EXPECT_EQ(tb.grid[2].values, (std::vector<std::string>{"256", "1024"}));
    EXPECT_EQ(TunedSettings(tb).size(), 30u);
  }
}

TEST(Suite, TunedBaselineErrorsNameTheKey) {
  const std::string head =
      "scenarios: [{path: ../scenarios/default.yaml, label: d}]\nrates: [10]\nduration_s: 2\n"
      "stacks: [vllm, gimbal]\n";
  auto expect_error = [&](const std::string& tuned, const std::string& needle) {
    auto plan = PlanText(head + tuned);
    ASSERT_FALSE(plan.ok()) << tuned;
    EXPECT_NE(plan.status().message().find(needle), std::string::npos)
        << tuned << " -> " << plan.status().message();
  };
  const std::string ok_grid = "grid: {max_num_seqs: [256]}";
  expect_error("tuned_baseline: {name: b, stack: vllm, " + ok_grid + ", bogus: 1}\n", "bogus");
  expect_error("tuned_baseline: {stack: vllm, " + ok_grid + "}\n", "tuned_baseline.name");
  expect_error("tuned_baseline: {name: b, " + ok_grid + "}\n", "tuned_baseline.stack");
  expect_error("tuned_baseline: {name: b, stack: vllm}\n", "tuned_baseline.grid");
  expect_error("tuned_baseline: {name: b, stack: nosuch, " + ok_grid + "}\n",
               "'nosuch' is not among the suite's stacks");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {}}\n", "non-empty");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: []}}\n",
               "tuned_baseline.grid.max_num_seqs': expected a non-empty list");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: 256}}\n",
               "tuned_baseline.grid.max_num_seqs': expected a non-empty list");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_sequences: [256]}}\n",
               "unknown engine key 'max_num_sequences'");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: [0]}}\n",
               "expected an integer >= 1, got '0'");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: [lots]}}\n",
               "expected an integer >= 1, got 'lots'");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {async_scheduling: [maybe]}}\n",
               "expected true or false, got 'maybe'");
  // Only the spellings the scenario reader takes: "True" passed here, then failed in the
  // scenario at a line of the rewritten document.
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {async_scheduling: [True]}}\n",
               "expected true or false, got 'True'");
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: [256, 256]}}\n",
               "value '256' is listed twice");
  expect_error(
      "tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: [1, 2, 3, 4, 5, 6, 7, 8, 9, "
      "10, 11], block_size: [16, 32, 48, 64, 80, 96, 112, 128, 144, 160]}}\n",
      "more than 100 points");
  expect_error("tuned_baseline: {name: a/b, stack: vllm, " + ok_grid + "}\n", "without '/'");
  expect_error("tuned_baseline: {name: gimbal, stack: vllm, " + ok_grid + "}\n",
               "already the name of a stack");
  const std::string twice = "tuned_baseline: [{name: b, stack: vllm, " + ok_grid +
                            "}, {name: b, stack: gimbal, " + ok_grid + "}]\n";
  expect_error(twice, "already the name of a stack or another tuned baseline");
  expect_error("tuned_baseline: []\n", "tuned_baseline");
  // A value the scenario loader rejects names the engine key.
  expect_error("tuned_baseline: {name: b, stack: vllm, grid: {max_num_seqs: [999999999999]}}\n",
               "max_num_seqs");
  // '/' is kept for members, in the suite's stacks and in a scenario's own.
  auto slash = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml}]\nrates: [10]\nduration_s: 2\n"
      "stacks: [vllm, {name: a/b, queue: fcfs}]\n");
  ASSERT_FALSE(slash.ok());
  EXPECT_NE(slash.status().message().find("has a '/'"), std::string::npos)
      << slash.status().message();
  auto none = PlanText(
      "scenarios: [{path: ../scenarios/default.yaml}]\nrates: [10]\nduration_s: 2\n"
      "tuned_baseline: {name: b, stack: nosuch, grid: {max_num_seqs: [256]}}\n");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no scenario runs stack 'nosuch'"), std::string::npos)
      << none.status().message();
  const std::string member = "baseline: b/s256\ntuned_baseline: {name: b, stack: vllm, " + ok_grid;
  auto member_baseline = PlanText(head + member + "}\n");
  ASSERT_FALSE(member_baseline.ok());
  EXPECT_NE(member_baseline.status().message().find("is a tuned_baseline member"),
            std::string::npos)
      << member_baseline.status().message();
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

// Results files are read as data: values of the wrong type are errors naming the point, where
// nlohmann's value() threw and ended `gimbal report`, and a point without a summary was read
// through a const operator[] (undefined).
TEST(Report, HeadlineTableRefusesPointsOfTheWrongShape) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"points": [1]})", "points[0]: must be an object"},
      {R"({"points": [{"rate": "x", "summary": {}}]})", "points[0]: 'rate' must be a number"},
      {R"({"points": [{"rate": 1, "stack": 5, "summary": {}}]})", "must be strings"},
      {R"({"points": [{"rate": 1, "seed": -2, "summary": {}}]})", "'seed' must be"},
      {R"({"points": [{"rate": 1, "stack": "vllm"}]})", "needs a 'summary' object"},
      {R"({"baseline": 3, "points": []})", "'baseline' must be a string"},
      {R"({"baseline": "vllm", "points": [{"rate": 1, "stack": "vllm", "seed": 1,
           "summary": {"mean_ttft_ms": "fast"}}, {"rate": 1, "stack": "gimbal", "seed": 1,
           "summary": {"mean_ttft_ms": 5}}]})",
       "a value of the wrong type"},
  };
  for (const auto& [text, message] : cases) {
    auto t = HeadlineTable(nlohmann::ordered_json::parse(text));
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.status().message().find(message), std::string::npos) << t.status().message();
  }
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
  EXPECT_EQ(row["tuned"], false);
  EXPECT_TRUE((*t)["vs_tuned"].empty());
}

// vllm, gimbal and three members of a tuned baseline at one rate, two seeds. Per metric the
// composite row takes the member with the best mean: a for mean TTFT, b for TPOT and throughput,
// a and b tie on p99 TTFT (a wins, first by name, though b comes first in the points).
TEST(Report, TunedBaselineRowTakesTheBestMemberPerMetric) {
  nlohmann::ordered_json r;
  r["baseline"] = "vllm";
  r["headline"] = "gimbal";
  struct Values {
    double ttft, tpot, p99, thr;
  };
  auto add = [&](const std::string& stack, int seed, Values v) {
    nlohmann::ordered_json p;
    p["source"] = "sim";
    p["scenario"] = "s";
    p["stack"] = stack;
    p["seed"] = seed;
    p["rate"] = 10.0;
    p["summary"] = {{"mean_ttft_ms", v.ttft},
                    {"mean_tpot_ms", v.tpot},
                    {"p99_ttft_ms", v.p99},
                    {"output_throughput", v.thr}};
    r["points"].push_back(p);
  };
  for (int seed : {1, 2}) {
    const double k = seed;  // seed 2 doubles every figure
    add("vllm", seed, {100 * k, 10 * k, 200 * k, 100 * k});
    add("gimbal", seed, {60 * k, 6 * k, 50 * k, 121 * k});
    add("vllm-best/c", seed, {150 * k, 30 * k, 300 * k, 50 * k});
    add("vllm-best/b", seed, {90 * k, 8 * k, 100 * k, 110 * k});
    add("vllm-best/a", seed, {80 * k, 12 * k, 100 * k, 100 * k});
  }
  auto t = HeadlineTable(r);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const auto& rows = (*t)["rows"];
  ASSERT_EQ(rows.size(), 2u);  // gimbal and the composite; members are not rows
  EXPECT_EQ(rows[0]["stack"], "gimbal");
  EXPECT_NEAR(rows[0]["metrics"]["mean_ttft_ms"]["mean_pct"].get<double>(), -40, 1e-9);
  const auto& best = rows[1];
  EXPECT_EQ(best["stack"], "vllm-best");
  EXPECT_EQ(best["tuned"], true);
  EXPECT_EQ(best["is_headline"], false);
  EXPECT_EQ(best["members"], 3);
  EXPECT_EQ(best["n_seeds"], 2);
  const std::map<std::string, std::pair<std::string, double>> want = {
      {"mean_ttft_ms", {"a", -20}},
      {"mean_tpot_ms", {"b", -20}},
      {"p99_ttft_ms", {"a", -50}},
      {"output_throughput", {"b", 10}}};
  for (const auto& [metric, w] : want) {
    const auto& m = best["metrics"][metric];
    EXPECT_EQ(m["best_setting"], w.first) << metric;
    EXPECT_EQ(m["best_stack"], "vllm-best/" + w.first) << metric;
    EXPECT_NEAR(m["mean_pct"].get<double>(), w.second, 1e-9) << metric;
    EXPECT_EQ(m["samples_pct"].size(), 2u) << metric;
    EXPECT_EQ(m["n"], 2) << metric;
    EXPECT_TRUE(m["paper_pct"].is_null()) << metric;
    EXPECT_EQ(m["member_means"].size(), 3u) << metric;
  }
  EXPECT_NEAR(best["metrics"]["mean_ttft_ms"]["member_means"]["c"].get<double>(), 225, 1e-9);
  EXPECT_NEAR(best["metrics"]["mean_ttft_ms"]["stack_mean"].get<double>(), 120, 1e-9);
  // Gimbal against the composite: per metric, against that metric's best member, seed by seed.
  ASSERT_EQ((*t)["vs_tuned"].size(), 1u);
  const auto& vs = (*t)["vs_tuned"][0];
  EXPECT_EQ(vs["stack"], "gimbal");
  EXPECT_EQ(vs["against"], "vllm-best");
  EXPECT_EQ(vs["n_seeds"], 2);
  const std::map<std::string, std::pair<std::string, double>> vs_want = {
      {"mean_ttft_ms", {"a", -25}},
      {"mean_tpot_ms", {"b", -25}},
      {"p99_ttft_ms", {"a", -50}},
      {"output_throughput", {"b", 10}}};
  for (const auto& [metric, w] : vs_want) {
    const auto& m = vs["metrics"][metric];
    EXPECT_EQ(m["against_setting"], w.first) << metric;
    EXPECT_NEAR(m["mean_pct"].get<double>(), w.second, 1e-9) << metric;
    EXPECT_NEAR(m["half_width_pct"].get<double>(), 0, 1e-9) << metric;
  }
  // The points in reverse order pick the same members (the composite row comes first then).
  nlohmann::ordered_json reversed = r;
  std::reverse(reversed["points"].begin(), reversed["points"].end());
  auto t2 = HeadlineTable(reversed);
  ASSERT_TRUE(t2.ok());
  ASSERT_EQ((*t2)["rows"].size(), 2u);
  EXPECT_EQ((*t2)["rows"][0]["stack"], "vllm-best");
  for (const auto& [metric, w] : want) {
    EXPECT_EQ((*t2)["rows"][0]["metrics"][metric]["best_setting"], w.first) << metric;
  }
}

}  // namespace
}  // namespace gimbal::experiment
