// Baseline dispatch policies on small hand-worked cases.
#include <gtest/gtest.h>

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
  auto p = MustMake("llmd");
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

TEST(LlmdDispatch, EqualValuesScoreOneAndKvCanBeUnnormalised) {
  // All queues equal: every queue score is 1, so KV alone decides.
  auto p = MustMake("llmd");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  EXPECT_EQ(p->Pick(SmallRequest(), QueuesAndKv({3, 3, 3}, {0.5, 0.4, 0.6}), rng), 1);
  // kv_minmax=false scores 1 − kv: with queues [1, 0, 0] and KV [0.1, 0.9, 0.5] the totals are
  // [2.2, 1.8, 1.0] (normalised they would tie e0/e1).
  auto raw = MustMake("llmd", P({{"kv_minmax", "false"}}));
  ASSERT_NE(raw, nullptr);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(raw->Pick(SmallRequest(), QueuesAndKv({0, 10, 10}, {0.9, 0.1, 0.5}), rng), 0);
  }
}

std::vector<EngineView> Inflight(std::vector<int64_t> load) {
  std::vector<EngineView> v(load.size());
  for (size_t i = 0; i < v.size(); ++i) v[i].inflight = load[i];
  return v;
}

TEST(SglangDispatch, SwitchesToLeastLoadedOnlyWhenBothThresholdsAreExceeded) {
  auto p = MustMake("sglang");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  DispatchRequest req = SmallRequest();
  // Find a key whose affinity engine is not engine 1 (the least loaded below).
  int target = -1;
  for (uint64_t key = 1; key < 100 && (target < 0 || target == 1); ++key) {
    req.affinity_key = key;
    target = p->Pick(req, Inflight({0, 0, 0}), rng);
  }
  ASSERT_NE(target, 1);
  // Imbalanced: 100 − 10 = 90 > 64 and 100 > 1.5·10: least loaded, whatever the key.
  EXPECT_EQ(p->Pick(req, Inflight({100, 10, 50}), rng), 1);
  // Absolute gap 60 ≤ 64: balanced, the affinity engine.
  EXPECT_EQ(p->Pick(req, Inflight({100, 40, 50}), rng), target);
  // Gap 65 > 64 but 200 ≤ 1.5·135 = 202.5: balanced.
  EXPECT_EQ(p->Pick(req, Inflight({200, 135, 150}), rng), target);
  // Gap 70 > 64 and 200 > 1.5·130 = 195: imbalanced.
  EXPECT_EQ(p->Pick(req, Inflight({200, 130, 150}), rng), 1);
  // No key: least loaded in both regimes.
  req.affinity_key = 0;
  EXPECT_EQ(p->Pick(req, Inflight({100, 40, 50}), rng), 1);
  EXPECT_EQ(p->Pick(req, Inflight({100, 10, 50}), rng), 1);
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
  engines[1].snapshot.waiting = 4;  // load 4
  engines[1].inflight = 100;
  DispatchRequest req = SmallRequest();
  EXPECT_EQ(p->Pick(req, engines, rng), 1);  // 10 − 4 > 4 and 10 > 2·4
  engines[1].snapshot.waiting = 6;           // 10 ≤ 2·6: balanced -> least loaded without key
  EXPECT_EQ(p->Pick(req, engines, rng), 1);
}

TEST(DynamoDispatch, PicksMinimumPrefillPlusDecodeBlocks) {
  auto p = MustMake("dynamo");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3, 16'000);
  DispatchRequest req = SmallRequest();
  req.prompt_tokens = 160;               // 10 prefill blocks everywhere
  engines[0].snapshot.kv_usage = 0.5;    // 8000 tokens = 500 blocks
  engines[1].snapshot.kv_usage = 0.1;    // the router's own count is larger:
  engines[1].reserved_kv_tokens = 9600;  //   600 blocks
  engines[2].snapshot.kv_usage = 0.3;    // 300 blocks
  engines[2].reserved_kv_tokens = 4000;  // 250 blocks: the report is larger
  Rng rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Pick(req, engines, rng), 2);
  engines[2].reserved_kv_tokens = 8800;  // 550 blocks: now e0 (500) wins
  EXPECT_EQ(p->Pick(req, engines, rng), 0);
}

}  // namespace
}  // namespace gimbal
