// Step policies: the fixed vLLM budget and Gimbal's coordinated budgets, on a hand-made model.
#include "policy/step/step_policy.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

constexpr int64_t kMax = 8192;

StepDeps Deps(int ranks = 4) {
  StepDeps d;
  d.cost_model = &dispatch_test::TestCostModel();
  d.ranks = ranks;
  return d;
}

std::unique_ptr<StepPolicy> Make(const std::string& name, const Params& p = {}) {
  auto r = MakeStepPolicy(name, p, Deps());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::vector<int64_t> Budgets(const StepPolicy& p, const std::vector<RankWork>& w,
                             int64_t max_budget = kMax) {
  std::vector<int64_t> b(w.size(), -1);
  p.Budgets(w, max_budget, b);
  return b;
}

RankWork Decoding(int64_t running, int64_t pending = 0, double context_each = 2000) {
  RankWork w;
  w.running = running;
  w.context_tokens = static_cast<double>(running) * context_each;
  w.pending_prefill = pending;
  return w;
}

TEST(StepPolicy, RegistryNamesAndErrors) {
  EXPECT_EQ(StepPolicyNames(), (std::vector<std::string>{"gimbal", "vllm"}));
  auto unknown = MakeStepPolicy("nope", {}, Deps());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("gimbal, vllm"), std::string::npos);
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"stretch", "0.5"},
                                                        {"min_chunk", "-1"},
                                                        {"max_step_ms", "-2"},
                                                        {"stretch", "x"},
                                                        {"fill", "maybe"},
                                                        {"backlog_steps", "-1"},
                                                        {"typo", "1"}}) {
    auto r =
        MakeStepPolicy("gimbal", Params(std::map<std::string, std::string>{{key, value}}), Deps());
    ASSERT_FALSE(r.ok()) << key << "=" << value;
    EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().ToString();
  }
  auto no_model = MakeStepPolicy("gimbal", {}, StepDeps{});
  ASSERT_FALSE(no_model.ok());
  EXPECT_NE(no_model.status().message().find("cost model"), std::string::npos);
}

TEST(StepPolicy, VllmGivesEveryRankTheFullBudget) {
  auto p = Make("vllm");
  ASSERT_NE(p, nullptr);
  const auto b = Budgets(*p, {Decoding(200, 9000), Decoding(0), Decoding(5, 100)});
  EXPECT_EQ(b, (std::vector<int64_t>{kMax, kMax, kMax}));
}

TEST(StepPolicy, GimbalGivesTheFullBudgetWhenNothingDecodesOrNothingPrefills) {
  auto p = Make("gimbal");
  ASSERT_NE(p, nullptr);
  // Nothing running anywhere: no decode to protect.
  EXPECT_EQ(Budgets(*p, {Decoding(0, 9000), Decoding(0, 0)}), (std::vector<int64_t>{kMax, kMax}));
  // Nothing to prefill: the budget does not matter; the engines' own limit stands.
  EXPECT_EQ(Budgets(*p, {Decoding(100, 0), Decoding(3, 0)}), (std::vector<int64_t>{kMax, kMax}));
}

TEST(StepPolicy, GimbalCapsALonePrefillNextToDecodingRanks) {
  auto p = Make("gimbal");
  ASSERT_NE(p, nullptr);
  const auto b = Budgets(*p, {Decoding(64, 20000), Decoding(64), Decoding(64), Decoding(64)});
  EXPECT_LT(b[0], kMax);                 // the chunk is cut to what the step can absorb
  EXPECT_GE(b[0], 64 + 256);             // but prefill progresses by at least min_chunk
  for (int64_t x : b) EXPECT_GE(x, 64);  // every running sequence gets its token
}

TEST(StepPolicy, GimbalBudgetsStayWithinBoundsOverManyStates) {
  auto p = Make("gimbal", dispatch_test::P({{"min_chunk", "128"}}));
  ASSERT_NE(p, nullptr);
  for (int64_t running : {1, 16, 256, 9000}) {
    for (int64_t pending : {0, 10, 5000}) {
      const std::vector<RankWork> w = {Decoding(running, pending), Decoding(running / 2 + 1, 3000)};
      const auto b = Budgets(*p, w);
      for (size_t r = 0; r < w.size(); ++r) {
        EXPECT_LE(b[r], kMax);
        EXPECT_GE(b[r], std::min(kMax, w[r].running));
        // Prefill progresses by min_chunk, or by all that is pending when that is less.
        EXPECT_GE(b[r],
                  std::min(kMax, w[r].running + std::min<int64_t>(128, w[r].pending_prefill)));
        // A rank with nothing to prefill keeps the engine's own limit.
        if (w[r].pending_prefill == 0) {
          EXPECT_EQ(b[r], kMax);
        }
      }
    }
  }
}

TEST(StepPolicy, GimbalEvensStepTimeNotTokens) {
  // A rank with fewer running sequences has a cheaper decode part, so it may take more prompt
  // tokens for the same step time.
  auto p = Make("gimbal");
  ASSERT_NE(p, nullptr);
  const auto b = Budgets(*p, {Decoding(200, 20000), Decoding(20, 20000)});
  EXPECT_GT(b[1] - 20, b[0] - 200);
}

TEST(StepPolicy, GimbalBudgetsGrowWithStretchAndAbsoluteCapBinds) {
  const std::vector<RankWork> w = {Decoding(128, 20000), Decoding(128, 20000)};
  int64_t previous = 0;
  for (const char* stretch : {"1", "1.5", "2", "4", "8"}) {
    auto p =
        Make("gimbal",
             dispatch_test::P({{"stretch", stretch}, {"min_chunk", "0"}, {"backlog_steps", "0"}}));
    ASSERT_NE(p, nullptr);
    const auto b = Budgets(*p, w);
    EXPECT_GE(b[0], previous) << "stretch " << stretch;
    previous = b[0];
  }
  EXPECT_GT(previous, 128);  // a loose target admits a real chunk
  auto capped = Make("gimbal", dispatch_test::P({{"stretch", "8"},
                                                 {"max_step_ms", "0.001"},
                                                 {"min_chunk", "0"},
                                                 {"backlog_steps", "0"}}));
  ASSERT_NE(capped, nullptr);
  // An absolute cap below the decode-only step leaves just the decodes, when no floor is set.
  EXPECT_EQ(Budgets(*capped, w)[0], 128 + 0);
  // The backlog floor, like min_chunk, still lets prefill progress: sqrt(16 · 20000 / 32) = 100.
  auto capped_backlog = Make("gimbal", dispatch_test::P({{"stretch", "8"},
                                                         {"max_step_ms", "0.001"},
                                                         {"min_chunk", "0"},
                                                         {"backlog_steps", "32"}}));
  ASSERT_NE(capped_backlog, nullptr);
  EXPECT_EQ(Budgets(*capped_backlog, w)[0], 128 + 100);
}

TEST(StepPolicy, GimbalFillsUpToTheSlowestRankWhenAFloorBinds) {
  // stretch 1: tau is the busiest rank's decode-only step, so rank 0 (200 decodes) fits no prompt
  // token and its 2,048-token floor sets the step. Rank 1 decodes less, so it fits more than its
  // floor in that same time; with `fill` it takes it, without it stays at the floor.
  // (No backlog floor: min_chunk alone is the floor here.)
  const std::vector<RankWork> w = {Decoding(200, 20000), Decoding(20, 20000), Decoding(200)};
  auto fill =
      Make("gimbal",
           dispatch_test::P({{"stretch", "1"}, {"min_chunk", "2048"}, {"backlog_steps", "0"}}));
  auto no_fill = Make(
      "gimbal",
      dispatch_test::P(
          {{"stretch", "1"}, {"min_chunk", "2048"}, {"backlog_steps", "0"}, {"fill", "false"}}));
  ASSERT_NE(fill, nullptr);
  ASSERT_NE(no_fill, nullptr);
  const auto with = Budgets(*fill, w);
  const auto without = Budgets(*no_fill, w);
  EXPECT_EQ(without, (std::vector<int64_t>{200 + 2048, 20 + 2048, kMax}));
  EXPECT_EQ(with[0], without[0]);  // the slowest rank is not lengthened
  EXPECT_GT(with[1], without[1] + 256);
  EXPECT_LT(with[1], kMax);  // but only up to the slowest rank's step, not the engine limit
  EXPECT_EQ(with[2], kMax);
  // A rank given more than the floor never ends up slower than the rank that set the step: rank 1
  // with rank 0's prompt tokens would be faster than rank 0 (fewer decodes), so its fill exceeds
  // rank 0's chunk.
  EXPECT_GT(with[1] - 20, with[0] - 200);

  // When no floor binds, fill changes nothing.
  auto loose = Make("gimbal", dispatch_test::P({{"min_chunk", "0"}}));
  auto loose_no_fill = Make("gimbal", dispatch_test::P({{"min_chunk", "0"}, {"fill", "false"}}));
  ASSERT_NE(loose, nullptr);
  ASSERT_NE(loose_no_fill, nullptr);
  EXPECT_EQ(Budgets(*loose, w), Budgets(*loose_no_fill, w));
}

TEST(StepPolicy, GimbalBacklogFloorFollowsTheSquareRootRule) {
  // stretch 1.2 and no fixed floor: rank 0's chunk is what fits the target (`fit`), unless its
  // backlog P is large enough for sqrt(fit · P / backlog_steps) to exceed it.
  const Params base = dispatch_test::P({{"stretch", "1.2"}, {"min_chunk", "0"}});
  Params off_params = base;
  off_params.Set("backlog_steps", "0");
  auto off = Make("gimbal", off_params);
  auto def = Make("gimbal", base);  // backlog_steps 8 by default
  Params on_params = base;
  on_params.Set("backlog_steps", "32");
  auto on = Make("gimbal", on_params);
  Params k8_params = base;
  k8_params.Set("backlog_steps", "8");
  auto k8 = Make("gimbal", k8_params);
  Params k4_params = base;
  k4_params.Set("backlog_steps", "4");
  auto k4 = Make("gimbal", k4_params);
  ASSERT_NE(k4, nullptr);
  ASSERT_NE(off, nullptr);
  ASSERT_NE(on, nullptr);
  ASSERT_NE(k8, nullptr);
  ASSERT_NE(def, nullptr);
  auto state = [](int64_t pending) {
    return std::vector<RankWork>{Decoding(200, pending), Decoding(200)};
  };
  const int64_t room = kMax - 200;
  const int64_t fit = Budgets(*off, state(1'000'000))[0] - 200;
  ASSERT_GE(fit, 16);
  ASSERT_LT(fit, room / 8);
  auto expected = [&](int64_t pending, double k) {
    const auto floor = static_cast<int64_t>(std::sqrt(static_cast<double>(fit) * pending / k));
    return 200 + std::min(room, std::max(fit, floor));
  };
  // A light backlog (P < k · fit) leaves the chunk at fit.
  const int64_t light = 16 * fit;
  EXPECT_EQ(Budgets(*on, state(light)), Budgets(*off, state(light)));
  // A heavy one takes the square-root chunk: larger with the backlog, smaller with k, and never
  // more than the engine's limit.
  int64_t previous = 0;
  for (int64_t pending : std::vector<int64_t>{100 * fit, 1'000 * fit, 1'000'000}) {
    const auto b = Budgets(*on, state(pending));
    EXPECT_EQ(b[0], expected(pending, 32)) << "pending " << pending;
    EXPECT_GT(b[0], previous);
    EXPECT_EQ(b[1], kMax);  // nothing to prefill there
    EXPECT_GE(Budgets(*k8, state(pending))[0], b[0]);
    EXPECT_GE(Budgets(*k4, state(pending))[0], Budgets(*k8, state(pending))[0]);
    EXPECT_EQ(Budgets(*def, state(pending)), Budgets(*k8, state(pending)));
    previous = b[0];
  }
  EXPECT_GT(Budgets(*on, state(1'000 * fit))[0], 200 + fit);
  EXPECT_LE(Budgets(*k8, state(1'000'000'000))[0], kMax);
}

}  // namespace
}  // namespace gimbal
