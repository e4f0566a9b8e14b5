// vllm: vLLM 0.33's DP load balancer as one of C API servers (docs/baseline.md, row 3), and the
// 2025 formula kept as vllm_2025.
#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

using dispatch_test::IdleEngines;
using dispatch_test::MustMake;
using dispatch_test::P;
using dispatch_test::SmallRequest;
using dispatch_test::TestDeps;

EngineView Engine(int64_t waiting, int64_t running, double kv = 0, int64_t inflight = 0,
                  int64_t picks = 0) {
  EngineView e;
  e.snapshot.waiting = waiting;
  e.snapshot.running = running;
  e.snapshot.kv_usage = kv;
  e.inflight = inflight;
  e.picks_since_snapshot = picks;
  return e;
}

// Front end `frontend` of `frontends`, after `sequence` picks of its own.
DispatchRequest From(int frontends, int frontend, uint64_t sequence) {
  DispatchRequest r = SmallRequest();
  r.frontends = frontends;
  r.frontend = frontend;
  r.sequence = sequence;
  return r;
}

TEST(VllmDispatchTest, ScoreMatchesV033) {
  // waiting 2, running 4, kv 0.75, C = 1, inflight 3: max(3, 2 + 4) + 6·2·(0.75 − 0.5) = 9.
  // An idle engine with inflight x scores x (C = 1). Scanning from the loaded engine first, it
  // keeps a tie at 9 (so its score is <= 9) and loses to 8; scanning from the other engine first,
  // the other keeps the tie at 9 (so the score is not below 9) and loses at 10.
  auto p = MustMake("vllm");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const EngineView loaded = Engine(2, 4, 0.75, 3);
  auto other = [](int64_t inflight) { return Engine(0, 0, 0.9, inflight); };
  std::vector<EngineView> e = {loaded, other(9)};
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);
  e[1] = other(8);
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 1);
  e = {other(9), loaded};
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);
  e[0] = other(10);
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 1);
  // The KV term applies only when waiting > 0: an implausible negative waiting count does not turn
  // it into a bonus. Engine 0: max(0, −2 + 8) = 6 (not 6 + 6·(−2)·0.5 = 0); engine 1: inflight 6.
  e = {Engine(-2, 8, 1.0), Engine(0, 0, 0, 6)};
  EXPECT_EQ(p->Pick(From(1, 0, 1), e, rng), 1);  // scan from 1: a tie at 6 stays with 1
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);  // scan from 0: a tie at 6 stays with 0
}

TEST(VllmDispatchTest, TiesRotate) {
  // Two idle engines, one front end, no snapshot between picks. The caller adds each pick to the
  // chosen engine's picks_since_snapshot (vLLM's local increment) and to the sequence (the scan
  // start): the picks alternate.
  auto p = MustMake("vllm");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  auto engines = IdleEngines(2);
  const int expected[] = {0, 1, 0, 1};
  for (uint64_t s = 0; s < 4; ++s) {
    const int got = p->Pick(From(1, 0, s), engines, rng);
    EXPECT_EQ(got, expected[s]) << "pick " << s;
    engines[static_cast<size_t>(got)].picks_since_snapshot += 1;
  }
  // The rotation alone alternates equal scores too; the 2025 formula keeps them on engine 0.
  const auto idle = IdleEngines(3);
  auto old = MustMake("vllm_2025");
  ASSERT_NE(old, nullptr);
  for (uint64_t s = 0; s < 6; ++s) {
    EXPECT_EQ(p->Pick(From(1, 0, s), idle, rng), static_cast<int>(s % 3));
    EXPECT_EQ(old->Pick(From(1, 0, s), idle, rng), 0);
  }
}

TEST(VllmDispatchTest, InflightScaledByClients) {
  // Engine 0: no waiting or running in the snapshot, this front end's 2 requests in flight.
  // Engine 1: waiting + running = 5. With C = 4 the floor is 4·2 = 8 > 5: engine 1. With C = 1
  // it is 2 < 5: engine 0.
  auto p = MustMake("vllm");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const std::vector<EngineView> e = {Engine(0, 0, 0, 2), Engine(1, 4)};
  EXPECT_EQ(p->Pick(From(4, 0, 0), e, rng), 1);
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);
}

TEST(VllmDispatchTest, LocalIncrementIsTheClientCount) {
  // One pick since the snapshot adds C to the engine's waiting: engine 0 scores 0 + 2·1 = 2 with
  // C = 2, more than engine 1's running 1; with C = 1 it ties at 1 and the scan keeps engine 0.
  auto p = MustMake("vllm");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const std::vector<EngineView> e = {Engine(0, 0, 0, 0, 1), Engine(0, 1)};
  EXPECT_EQ(p->Pick(From(2, 0, 0), e, rng), 1);
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);
  // The increment counts as waiting for the KV term too: against an engine running 5, C = 2 gives
  // 2 + 6·2·(0.9 − 0.5) = 6.8 (without the KV term it would be 2), C = 1 gives 1 + 2.4 = 3.4.
  const std::vector<EngineView> kv = {Engine(0, 0, 0.9, 0, 1), Engine(0, 5)};
  EXPECT_EQ(p->Pick(From(2, 0, 0), kv, rng), 1);
  EXPECT_EQ(p->Pick(From(1, 0, 0), kv, rng), 0);
}

TEST(VllmDispatchTest, SecondClientStartsHalfway) {
  // R = 4, C = 2: client 1's scan starts at (4·1)//2 = 2, then moves one engine per pick.
  auto p = MustMake("vllm");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const auto idle = IdleEngines(4);
  EXPECT_EQ(p->Pick(From(2, 1, 0), idle, rng), 2);
  EXPECT_EQ(p->Pick(From(2, 1, 1), idle, rng), 3);
  EXPECT_EQ(p->Pick(From(2, 1, 2), idle, rng), 0);
  EXPECT_EQ(p->Pick(From(2, 0, 0), idle, rng), 0);
  // R = 4, C = 3: starts 0, 1, 2.
  for (int client = 0; client < 3; ++client) {
    EXPECT_EQ(p->Pick(From(3, client, 0), idle, rng), (4 * client) / 3) << client;
  }
  // An unhealthy engine at the start is skipped, the scan goes on from there.
  auto some_down = IdleEngines(4);
  some_down[2].healthy = false;
  EXPECT_EQ(p->Pick(From(2, 1, 0), some_down, rng), 3);
}

TEST(VllmDispatchTest, DefaultsToOneFrontEndPerEngine) {
  for (const char* name : {"vllm", "vllm_kv"}) {
    auto p = MustMake(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->DefaultFrontends(8), 8) << name;
    EXPECT_EQ(p->DefaultFrontends(0), 1) << name;
  }
  for (const char* name : {"vllm_2025", "vllm_kv_2025", "round_robin", "gimbal"}) {
    auto p = MustMake(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->DefaultFrontends(8), 1) << name;
  }
}

TEST(VllmDispatchTest, Vllm2025FormulaIgnoresFrontEnds) {
  // 4·(waiting + picks) + running: e0 4·1+5 = 9, e1 4·(0+2)+0 = 8, e2 4·2+1 = 9, e3 0+8 = 8.
  // The lowest, ties to the lowest index, whatever the front-end fields say.
  auto p = MustMake("vllm_2025");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const std::vector<EngineView> e = {Engine(1, 5), Engine(0, 0, 0.9, 50, 2), Engine(2, 1),
                                     Engine(0, 8)};
  for (int c : {1, 2, 4}) {
    for (int f = 0; f < c; ++f) {
      for (uint64_t s = 0; s < 5; ++s) EXPECT_EQ(p->Pick(From(c, f, s), e, rng), 1);
    }
  }
  // waiting 3 against running 5: 4·3 = 12 > 5 by default, 1·3 = 3 < 5 with waiting_weight 1.
  const std::vector<EngineView> w = {Engine(3, 0), Engine(0, 5)};
  EXPECT_EQ(p->Pick(SmallRequest(), w, rng), 1);
  auto weighted = MustMake("vllm_2025", P({{"waiting_weight", "1"}}));
  ASSERT_NE(weighted, nullptr);
  EXPECT_EQ(weighted->Pick(SmallRequest(), w, rng), 0);
}

TEST(VllmDispatchTest, ParametersPerFormula) {
  EXPECT_TRUE(
      MakeDispatchPolicy("vllm", P({{"kv_weight", "3"}, {"kv_threshold", "0.8"}}), TestDeps())
          .ok());
  EXPECT_FALSE(MakeDispatchPolicy("vllm", P({{"waiting_weight", "4"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("vllm", P({{"kv_weight", "-1"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("vllm_2025", P({{"kv_weight", "6"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("vllm_2025", P({{"waiting_weight", "-1"}}), TestDeps()).ok());
  EXPECT_TRUE(MakeDispatchPolicy("vllm_kv_2025", P({{"kv_weight", "0"}}), TestDeps()).ok());
  // kv_weight 0 drops the KV term: waiting 2 running 4 kv 1.0 scores 6 and ties with running 6.
  auto p = MustMake("vllm", P({{"kv_weight", "0"}}));
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  const std::vector<EngineView> e = {Engine(0, 6), Engine(2, 4, 1.0)};
  EXPECT_EQ(p->Pick(From(1, 0, 1), e, rng), 1);
  EXPECT_EQ(p->Pick(From(1, 0, 0), e, rng), 0);
}

}  // namespace
}  // namespace gimbal
