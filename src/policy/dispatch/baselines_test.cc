// Baseline dispatch policies on small hand-worked cases.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "policy/dispatch/builtin_policies.h"
#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

using dispatch_test::IdleEngines;
using dispatch_test::MustMake;
using dispatch_test::P;
using dispatch_test::Shares;
using dispatch_test::SmallRequest;

TEST(RoundRobinDispatch, CyclesOverHealthyEnginesBySequence) {
  auto p = MustMake("round_robin");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(4);
  engines[1].healthy = false;
  Rng rng(1);
  DispatchRequest req = SmallRequest();
  const int expected[] = {0, 2, 3, 0, 2, 3, 0};
  for (uint64_t s = 0; s < 7; ++s) {
    req.sequence = s;
    EXPECT_EQ(p->Pick(req, engines, rng), expected[s]);
  }
}

// One engine's published counts and the front end's picks since.
EngineView Counts(int64_t waiting, int64_t running, int64_t picks = 0) {
  EngineView e;
  e.snapshot.waiting = waiting;
  e.snapshot.running = running;
  e.picks_since_snapshot = picks;
  return e;
}

// vllm_2025 is the formula `vllm` had before vLLM 0.33 (kept so old results reproduce).
TEST(Vllm2025Dispatch, MatchesHandWorkedTableWithLocalIncrements) {
  // score = 4·(waiting + picks) + running:
  //   start     e0 4·2+3=11  e1 4·(1+1)+5=13  e2 0+10=10  e3 4·1+6=10
  //   pick 1 -> e2 (tie with e3, lowest index), e2 becomes 14
  //   pick 2 -> e3 (10), 14;  pick 3 -> e0 (11), 15;  pick 4 -> e1 (13), 17
  //   pick 5 -> e2 (14, tie with e3), 18;  pick 6 -> e3, 18;  pick 7 -> e0 (15), 19
  //   pick 8 -> e1 (17), 21
  auto p = MustMake("vllm_2025");
  ASSERT_NE(p, nullptr);
  std::vector<EngineView> engines = {Counts(2, 3), Counts(1, 5, 1), Counts(0, 10), Counts(1, 6)};
  const int expected[] = {2, 3, 0, 1, 2, 3, 0, 1};
  Rng rng(1);
  for (int want : expected) {
    const int got = p->Pick(SmallRequest(), engines, rng);
    EXPECT_EQ(got, want);
    engines[static_cast<size_t>(got)].picks_since_snapshot += 1;  // the caller's local increment
  }
}

TEST(Vllm2025Dispatch, SkipsUnhealthyAndBreaksTiesToLowestIndex) {
  auto p = MustMake("vllm_2025");
  ASSERT_NE(p, nullptr);
  std::vector<EngineView> engines = {Counts(0, 2), Counts(0, 1), Counts(0, 1), Counts(0, 1)};
  engines[1].healthy = false;
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 2);
}

void CheckKvHandWorkedScores(const char* name) {
  auto p = MustMake(name);
  ASSERT_NE(p, nullptr);
  std::vector<EngineView> engines = {Counts(2, 5), Counts(6, 6), Counts(0, 12)};
  engines[0].inflight = 10;
  engines[0].snapshot.kv_usage = 0.9;
  engines[1].inflight = 3;
  engines[1].snapshot.kv_usage = 0.5;
  engines[2].inflight = 12;
  engines[2].snapshot.kv_usage = 0.95;
  Rng rng(1);
  EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);  // tie 12 = 12 to the lower index
  engines[1].snapshot.kv_usage = 0.6;                   // e1: 12 + 6·6·0.1 = 15.6
  EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 2);
  engines[2].picks_since_snapshot = 4;  // e2: max(12, 16) + 6·4·0.45 = 26.8
  EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 0);
}

TEST(VllmKvDispatch, MatchesHandWorkedScores) {
  // max(inflight, waiting + running) + 6·waiting·max(0, kv − 0.5):
  //   e0: max(10, 2+5) + 6·2·0.4 = 14.8;  e1: max(3, 6+6) + 0 = 12;  e2: max(12, 0+12) + 0 = 12
  // vllm_kv_2025 is the 2025 KV-aware formula; vllm_kv (= vllm 0.33) with one front end and the
  // first pick of its scan (sequence 0, start at engine 0) gives the same scores and picks.
  for (const char* name : {"vllm_kv_2025", "vllm_kv"}) {
    SCOPED_TRACE(name);
    CheckKvHandWorkedScores(name);
  }
}

TEST(LeastRequestsDispatch, PicksFewestInflightWithRandomTieBreak) {
  auto p = MustMake("least_requests");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(4);
  const int64_t inflight[] = {5, 2, 2, 7};
  for (size_t i = 0; i < 4; ++i) engines[i].inflight = inflight[i];
  const auto share = Shares(*p, SmallRequest(), engines, 20'000);
  EXPECT_EQ(share[0], 0.0);
  EXPECT_EQ(share[3], 0.0);
  EXPECT_NEAR(share[1], 0.5, 0.02);
  EXPECT_NEAR(share[2], 0.5, 0.02);
}

// The allocation-free helper least_requests uses picks as HealthyEngines + PickMinRandomTie do,
// with the same random draws: the simulator's runs do not depend on which one a policy calls.
TEST(LeastRequestsDispatch, TheHealthyScanIsThePickOfTheGeneralHelpers) {
  Rng gen(11);
  for (int trial = 0; trial < 20'000; ++trial) {
    auto engines = IdleEngines(1 + static_cast<int>(gen.UniformInt(9)));
    std::vector<double> scores(engines.size());
    for (size_t i = 0; i < engines.size(); ++i) {
      engines[i].healthy = gen.UniformInt(4) != 0;
      engines[i].inflight = static_cast<int64_t>(gen.UniformInt(4));
      scores[i] = static_cast<double>(engines[i].inflight);
    }
    Rng a(static_cast<uint64_t>(trial)), b(static_cast<uint64_t>(trial));
    const int fast = dispatch_internal::PickMinHealthyRandomTie(
        engines, [](const EngineView& e) { return e.inflight; }, a);
    const int plain = dispatch_internal::PickMinRandomTie(
        dispatch_internal::HealthyEngines(engines), scores, 0, b);
    ASSERT_EQ(fast, plain) << "trial " << trial;
    ASSERT_EQ(a.UniformInt(1u << 30), b.UniformInt(1u << 30)) << "trial " << trial;  // same draws
  }
}

TEST(PowerOfTwoDispatch, NeverPicksTheMoreLoadedOfItsTwo) {
  // With distinct loads, the engine of load rank k (0 = least) wins exactly when it is drawn with
  // a more loaded one: probability (n − 1 − k) / C(n, 2). The most loaded never wins.
  auto p = MustMake("power_of_two");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(4);
  const int64_t inflight[] = {30, 10, 40, 20};  // ranks 2, 0, 3, 1
  for (size_t i = 0; i < 4; ++i) engines[i].inflight = inflight[i];
  const auto share = Shares(*p, SmallRequest(), engines, 60'000);
  EXPECT_EQ(share[2], 0.0);
  EXPECT_NEAR(share[1], 3.0 / 6, 0.015);
  EXPECT_NEAR(share[3], 2.0 / 6, 0.015);
  EXPECT_NEAR(share[0], 1.0 / 6, 0.015);
}

TEST(PowerOfTwoDispatch, TwoEnginesAlwaysTheLessLoaded) {
  auto p = MustMake("power_of_two");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3);
  engines[0].inflight = 9;
  engines[1].healthy = false;
  engines[2].inflight = 4;
  Rng rng(3);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 2);
}

std::vector<EngineView> QueuesAndKv(std::vector<int64_t> waiting, std::vector<double> kv) {
  std::vector<EngineView> v(waiting.size());
  for (size_t i = 0; i < v.size(); ++i) {
    v[i].snapshot.waiting = waiting[i];
    v[i].snapshot.kv_usage = kv[i];
  }
  return v;
}

TEST(LlmdDispatch, MinMaxNormalisedScorersHandWorked) {
  // kv_minmax=true: the KV scorer min-max normalised like the queue scorer. No prefix held: the
  // prefix scorer is 0 everywhere and does not decide.
  auto p = MustMake("llmd", P({{"kv_minmax", "true"}}));
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  // queue scores (10−q)/10 = [1, 0, 0.5]; KV scores (0.8−kv)/0.6 = [1, 1, 0];
  // totals 2·q + 2·kv = [4, 2, 1] -> e0.
  EXPECT_EQ(p->Pick(SmallRequest(), QueuesAndKv({0, 10, 5}, {0.2, 0.2, 0.8}), rng), 0);
  // queue [1, 0, 0.5]; KV (0.9−kv)/0.8 = [1, 0, 0.5] with kv [0.1, 0.9, 0.5]: totals [4, 0, 2].
  EXPECT_EQ(p->Pick(SmallRequest(), QueuesAndKv({0, 10, 5}, {0.1, 0.9, 0.5}), rng), 0);
  // queue [1, 0, 0]; KV [0, 1, 0.5] with kv [0.9, 0.1, 0.5]: totals [2, 2, 1]: e0/e1 at random.
  const auto share = Shares(*p, SmallRequest(), QueuesAndKv({0, 10, 10}, {0.9, 0.1, 0.5}), 20'000);
  EXPECT_NEAR(share[0], 0.5, 0.02);
  EXPECT_NEAR(share[1], 0.5, 0.02);
  EXPECT_EQ(share[2], 0.0);
}

TEST(LlmdDispatch, DefaultKvScorerIsOneMinusUsage) {
  // llm-d's kv-cache-utilization scorer: 1 − kv. Queues [0, 10, 10] score [1, 0, 0]; with KV
  // [0.9, 0.1, 0.5] the totals are 2·q + 2·(1 − kv) = [2.2, 1.8, 1.0] -> e0 (min-max would tie
  // e0 and e1). All queues equal: every queue score is 1, so KV alone decides.
  auto p = MustMake("llmd");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(p->Pick(SmallRequest(), QueuesAndKv({0, 10, 10}, {0.9, 0.1, 0.5}), rng), 0);
  }
  EXPECT_EQ(p->Pick(SmallRequest(), QueuesAndKv({3, 3, 3}, {0.5, 0.4, 0.6}), rng), 1);
}

DispatchRequest Prompt(int64_t tokens) {
  DispatchRequest r = SmallRequest();
  r.prompt_tokens = tokens;
  return r;
}

TEST(LlmdDispatch, PrefixScorerPrefersTheEngineHoldingThePrefix) {
  // Equal queues (score 1 each): 1600 prompt tokens = 100 blocks of 16; e2 holds 1200 (75
  // blocks), e1 8 tokens (no whole block). Approximate scorer: 3·0.75 = 2.25 for e2, 0 elsewhere;
  // totals e0 2 + 2·0.7 = 3.4, e1 2 + 2·0.65 = 3.3, e2 3.4 + 2.25.
  auto p = MustMake("llmd");
  ASSERT_NE(p, nullptr);
  auto engines = QueuesAndKv({2, 2, 2}, {0.3, 0.35, 0.3});
  engines[1].cached_prompt_tokens = 8;
  engines[2].cached_prompt_tokens = 1200;
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(Prompt(1600), engines, rng), 2);
  // Load outweighs it: e2 queue 12 (score 0) and KV 0.9 -> 2·0 + 2·0.1 + 2.25 = 2.45 against
  // e0's 2·1 + 2·0.7 = 3.4 (e1: 3.3).
  engines[2].snapshot.waiting = 12;
  engines[2].snapshot.kv_usage = 0.9;
  EXPECT_EQ(p->Pick(Prompt(1600), engines, rng), 0);
  // A prefix of 95 % (95 of 100 blocks) still loses: 2·0.1 + 3·0.95 = 3.05 < 3.4.
  engines[2].cached_prompt_tokens = 1520;
  EXPECT_EQ(p->Pick(Prompt(1600), engines, rng), 0);
  // With the prefix weight raised to 5 it wins: 0.2 + 4.75 = 4.95 > 3.4.
  auto heavy = MustMake("llmd", P({{"prefix_weight", "5"}}));
  ASSERT_NE(heavy, nullptr);
  EXPECT_EQ(heavy->Pick(Prompt(1600), engines, rng), 2);
}

TEST(LlmdDispatch, ApproximateScorerCountsAtMostMaxPrefixBlocks) {
  // 256 blocks of 16 = 4096 tokens are matched at most: a 10,000-token prompt with 4096 cached on
  // e0 scores 1, the same as 8000 cached on e1 -> a tie between them (e2 holds nothing).
  auto p = MustMake("llmd");
  ASSERT_NE(p, nullptr);
  auto engines = QueuesAndKv({0, 0, 0}, {0.2, 0.2, 0.2});
  engines[0].cached_prompt_tokens = 4096;
  engines[1].cached_prompt_tokens = 8000;
  const auto share = Shares(*p, Prompt(10'000), engines, 20'000);
  EXPECT_NEAR(share[0], 0.5, 0.02);
  EXPECT_NEAR(share[1], 0.5, 0.02);
  EXPECT_EQ(share[2], 0.0);
  // Unbounded matching (max_prefix_blocks large) separates them: 8000 > 4096.
  auto wide = MustMake("llmd", P({{"max_prefix_blocks", "100000"}}));
  ASSERT_NE(wide, nullptr);
  Rng rng(1);
  EXPECT_EQ(wide->Pick(Prompt(10'000), engines, rng), 1);
}

TEST(LlmdDispatch, PreciseScorerMinMaxNormalisesBlockHits) {
  // Precise: hits in blocks [0, 10, 20, 40] -> the engines with hits score (h − 10)/30 =
  // [0, 0, 1/3, 1]. Equal loads: e3 (2 + 2·0.8 + 3 = 6.6). Give e3 a queue of 10 and KV 0.3
  // (queue scores [1, 1, 1, 0]): e2 = 2 + 1.6 + 1 = 4.6 beats e3 = 0 + 1.4 + 3 = 4.4 and
  // e0 = e1 = 3.6.
  auto precise = MustMake("llmd", P({{"prefix_scorer", "precise"}}));
  ASSERT_NE(precise, nullptr);
  auto engines = QueuesAndKv({0, 0, 0, 0}, {0.2, 0.2, 0.2, 0.2});
  engines[1].cached_prompt_tokens = 160;
  engines[2].cached_prompt_tokens = 320;
  engines[3].cached_prompt_tokens = 640;
  Rng rng(1);
  EXPECT_EQ(precise->Pick(Prompt(1600), engines, rng), 3);
  engines[3].snapshot.waiting = 10;
  engines[3].snapshot.kv_usage = 0.3;
  EXPECT_EQ(precise->Pick(Prompt(1600), engines, rng), 2);
  // The same hits on every holder score 1 for each; e0 (no hit) scores 0 -> e1/e2 at random.
  auto equal = QueuesAndKv({0, 0, 0}, {0.2, 0.2, 0.2});
  equal[1].cached_prompt_tokens = 320;
  equal[2].cached_prompt_tokens = 320;
  const auto share = Shares(*precise, Prompt(1600), equal, 20'000);
  EXPECT_EQ(share[0], 0.0);
  EXPECT_NEAR(share[1], 0.5, 0.02);
  EXPECT_NEAR(share[2], 0.5, 0.02);
}

TEST(LlmdDispatch, ParameterErrorsNameTheKey) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"prefix_weight", "-1"},
                                                        {"queue_weight", "-1"},
                                                        {"kv_weight", "-0.5"},
                                                        {"block_size", "0"},
                                                        {"max_prefix_blocks", "0"},
                                                        {"prefix_scorer", "exact"}}) {
    auto r = MakeDispatchPolicy("llmd", P({{key, value}}));
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_NE(r.status().ToString().find("'" + key + "'"), std::string::npos)
        << r.status().ToString();
  }
}

std::vector<EngineView> Inflight(std::vector<int64_t> load) {
  std::vector<EngineView> v(load.size());
  for (size_t i = 0; i < v.size(); ++i) v[i].inflight = load[i];
  return v;
}

TEST(SglangDispatch, BalancedGoesToTheLongestMatchAboveTheCacheThreshold) {
  // Defaults: cache_threshold 0.3. Loads equal; e2 holds 400 of 1000 prompt tokens (0.4 > 0.3).
  auto p = MustMake("sglang");
  ASSERT_NE(p, nullptr);
  auto engines = Inflight({5, 5, 5, 5});
  engines[1].cached_prompt_tokens = 200;
  engines[2].cached_prompt_tokens = 400;
  engines[2].snapshot.kv_usage = 0.9;  // the fullest engine: cache affinity wins anyway
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(Prompt(1000), engines, rng), 2);
  // At exactly 0.3 (not above) the match is not good enough: the "smallest tree" stand-in, the
  // engine with the least KV in use (e3 at 0.1).
  engines[2].cached_prompt_tokens = 300;
  engines[0].snapshot.kv_usage = 0.5;
  engines[1].snapshot.kv_usage = 0.5;
  engines[3].snapshot.kv_usage = 0.1;
  EXPECT_EQ(p->Pick(Prompt(1000), engines, rng), 3);
  // The least KV in use counts this front end's reservations when they exceed the report: e3
  // reserved 60 % of a 10,000-token cache -> e0/e1 (0.5) at random.
  for (auto& e : engines) e.snapshot.kv_capacity_tokens = 10'000;
  engines[3].reserved_kv_tokens = 6000;
  EXPECT_NE(p->Pick(Prompt(1000), engines, rng), 3);
  // A lower threshold makes 0.3 enough.
  auto loose = MustMake("sglang", P({{"cache_threshold", "0.2"}}));
  ASSERT_NE(loose, nullptr);
  EXPECT_EQ(loose->Pick(Prompt(1000), engines, rng), 2);
}

TEST(SglangDispatch, SwitchesToLeastLoadedOnlyWhenBothThresholdsAreExceeded) {
  auto p = MustMake("sglang");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const DispatchRequest req = Prompt(1000);
  auto with_prefix = [](std::vector<int64_t> load) {
    auto v = Inflight(std::move(load));
    v[0].cached_prompt_tokens = 900;  // e0 holds the prefix
    return v;
  };
  // Imbalanced: 100 − 10 = 90 > 64 and 100 > 1.5·10: least loaded, whatever the cache.
  EXPECT_EQ(p->Pick(req, with_prefix({100, 10, 50}), rng), 1);
  // Absolute gap 60 ≤ 64: balanced, the engine with the prefix.
  EXPECT_EQ(p->Pick(req, with_prefix({100, 40, 50}), rng), 0);
  // Gap 65 > 64 but 200 ≤ 1.5·135 = 202.5: balanced.
  EXPECT_EQ(p->Pick(req, with_prefix({200, 135, 150}), rng), 0);
  // Gap 70 > 64 and 200 > 1.5·130 = 195: imbalanced.
  EXPECT_EQ(p->Pick(req, with_prefix({200, 130, 150}), rng), 1);
  // Imbalanced with a tie for least loaded: the first (minimum-by-key scan).
  EXPECT_EQ(p->Pick(req, with_prefix({100, 10, 10}), rng), 1);
}

TEST(SglangDispatch, SnapshotLoadSignalAndThresholdParameters) {
  auto p = MustMake("sglang", P({{"load_signal", "snapshot"},
                                 {"balance_abs_threshold", "4"},
                                 {"balance_rel_threshold", "2"}}));
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  std::vector<EngineView> engines(2);
  engines[0].snapshot.running = 10;  // load 10, inflight ignored
  engines[0].inflight = 0;
  engines[0].cached_prompt_tokens = 90;  // holds 90 % of the prompt
  engines[1].snapshot.waiting = 4;       // load 4
  engines[1].inflight = 100;
  DispatchRequest req = SmallRequest();
  EXPECT_EQ(p->Pick(req, engines, rng), 1);  // 10 − 4 > 4 and 10 > 2·4: least loaded
  engines[1].snapshot.waiting = 6;           // 10 ≤ 2·6: balanced -> the prefix holder
  EXPECT_EQ(p->Pick(req, engines, rng), 0);
}

TEST(SglangDispatch, ParameterErrorsNameTheKey) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"cache_threshold", "1.5"},
                                                        {"cache_threshold", "-0.1"},
                                                        {"balance_abs_threshold", "-1"},
                                                        {"balance_rel_threshold", "0.5"},
                                                        {"load_signal", "queue"}}) {
    auto r = MakeDispatchPolicy("sglang", P({{key, value}}));
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_NE(r.status().ToString().find("'" + key + "'"), std::string::npos)
        << r.status().ToString();
  }
}

TEST(DynamoDispatch, PicksMinimumPrefillPlusDecodeBlocks) {
  // 160-token prompt = 10 blocks; decode blocks from the engines' KV in use (capacity 16,000).
  auto p = MustMake("dynamo");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3, 16'000);
  DispatchRequest req = SmallRequest();
  req.prompt_tokens = 160;
  engines[0].snapshot.kv_usage = 0.5;      // 500 blocks: 10 + 500
  engines[1].snapshot.kv_usage = 0.2;      // 200 blocks, but 5120 prompt tokens pending prefill:
  engines[1].reserved_prefill = 5120;      //   10 + 320 + 200 = 530
  engines[2].snapshot.kv_usage = 0.3;      // 300 blocks: 10 + 300 = 310; reservations beyond the
  engines[2].reserved_kv_tokens = 16'000;  //   engine's own count do not count
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(req, engines, rng), 2);
  // The engine reports 3360 tokens pending (larger than the front end's 0): 10 + 210 + 300 = 520
  // against e0's 510.
  engines[2].snapshot.prefill_pending_tokens = 3360;
  EXPECT_EQ(p->Pick(req, engines, rng), 0);
  // Capacity unknown: decode blocks are the front end's reservations (e0 800 tokens = 50 blocks,
  // e1 480 = 30): e1.
  std::vector<EngineView> unknown(2);
  unknown[0].reserved_kv_tokens = 800;
  unknown[1].reserved_kv_tokens = 480;
  unknown[1].snapshot.kv_usage = 0.9;  // ignored without a capacity
  EXPECT_EQ(p->Pick(req, unknown, rng), 1);
}

TEST(DynamoDispatch, OverlapCutsPrefillBlocksAndTradesAgainstDecodeBlocks) {
  // 1600-token prompt = 100 blocks. Equal decode load (KV 0.2 of 16,000 tokens = 200 blocks):
  // e1 holds 800 tokens (50 blocks) -> 50 + 200 = 250 against 300: e1. Cached tokens count in
  // whole blocks (807 = 50).
  auto p = MustMake("dynamo");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3, 16'000);
  for (auto& e : engines) e.snapshot.kv_usage = 0.2;
  engines[1].cached_prompt_tokens = 807;
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(Prompt(1600), engines, rng), 1);
  // e1 busier by 60 blocks (KV 0.26 = 4160 tokens = 260): 50 + 260 = 310 > 300 -> e0/e2.
  engines[1].snapshot.kv_usage = 0.26;
  const auto share = Shares(*p, Prompt(1600), engines, 20'000);
  EXPECT_EQ(share[1], 0.0);
  EXPECT_NEAR(share[0], 0.5, 0.02);
  // overlap_score_weight 2 weighs prefill double: e1 2·50 + 260 = 360 < 2·100 + 200 = 400.
  auto ttft = MustMake("dynamo", P({{"overlap_score_weight", "2"}}));
  ASSERT_NE(ttft, nullptr);
  EXPECT_EQ(ttft->Pick(Prompt(1600), engines, rng), 1);
  // overlap_score_weight 0 ignores the cache: pure decode-load balance.
  auto load = MustMake("dynamo", P({{"overlap_score_weight", "0"}}));
  ASSERT_NE(load, nullptr);
  engines[1].snapshot.kv_usage = 0.1875;
  EXPECT_EQ(load->Pick(Prompt(1600), engines, rng), 1);  // 3000 tokens = 187.5 blocks, fewest
}

TEST(DynamoDispatch, TemperatureSamplesSoftmaxOfNormalisedCosts) {
  // Costs [100, 150, 200] blocks normalise to [0, 0.5, 1]; at T = 1 the weights are
  // [1, e^−0.5, e^−1] / sum.
  auto p = MustMake("dynamo", P({{"router_temperature", "1"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3, 16'000);
  engines[1].snapshot.kv_usage = 0.05;  // 800 tokens = 50 blocks
  engines[2].snapshot.kv_usage = 0.1;   // 100 blocks
  const double w1 = std::exp(-0.5);
  const double w2 = std::exp(-1.0);
  const double sum = 1 + w1 + w2;
  const auto share = Shares(*p, Prompt(1600), engines, 40'000);
  EXPECT_NEAR(share[0], 1 / sum, 0.01);
  EXPECT_NEAR(share[1], w1 / sum, 0.01);
  EXPECT_NEAR(share[2], w2 / sum, 0.01);
  // Equal costs: uniform. The default temperature 0 always takes the minimum.
  const auto uniform = Shares(*p, Prompt(1600), IdleEngines(4), 40'000);
  for (double s : uniform) EXPECT_NEAR(s, 0.25, 0.01);
  auto greedy = MustMake("dynamo");
  ASSERT_NE(greedy, nullptr);
  EXPECT_EQ(Shares(*greedy, Prompt(1600), engines, 1000)[0], 1.0);
}

TEST(DynamoDispatch, ParameterErrorsNameTheKey) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"overlap_score_weight", "-1"}, {"router_temperature", "-0.1"}, {"block_size", "0"}}) {
    auto r = MakeDispatchPolicy("dynamo", P({{key, value}}));
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_NE(r.status().ToString().find("'" + key + "'"), std::string::npos)
        << r.status().ToString();
  }
}

}  // namespace
}  // namespace gimbal
