// The `gimbal` dispatch policy: KV limit, uniform near-ties, monotonicity in every signal,
// switching signals off, freshness and soft affinity.
#include <algorithm>
#include <functional>

#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

using dispatch_test::IdleEngines;
using dispatch_test::MustMake;
using dispatch_test::P;
using dispatch_test::Shares;
using dispatch_test::SmallRequest;

// Sets one signal on an engine to a level; the levels are increasing in `level`.
struct Signal {
  const char* name;
  const char* weight;  // the parameter that switches it off
  std::function<void(EngineView&, int level)> raise;
};

std::vector<Signal> AllSignals() {
  return {
      {"kv", "w_kv", [](EngineView& e, int l) { e.snapshot.kv_usage = 0.1 + 0.02 * l; }},
      {"reserved_prefill", "w_pf", [](EngineView& e, int l) { e.reserved_prefill = 40 * l; }},
      {"waiting", "w_q", [](EngineView& e, int l) { e.snapshot.waiting = l; }},
      {"picks_since_snapshot", "w_q", [](EngineView& e, int l) { e.picks_since_snapshot = l; }},
      {"running", "rho", [](EngineView& e, int l) { e.snapshot.running = 2 * l; }},
      {"moe_pressure", "w_moe", [](EngineView& e, int l) { e.moe_pressure = 1.0 + 0.005 * l; }},
  };
}

double KvAfter(const EngineView& e, const DispatchRequest& r) {
  const double cap = static_cast<double>(e.snapshot.kv_capacity_tokens);
  return std::max(e.snapshot.kv_usage, static_cast<double>(e.reserved_kv_tokens) / cap) +
         static_cast<double>(r.prompt_tokens + std::min<int64_t>(r.max_output_tokens, 512)) / cap;
}

TEST(GimbalDispatch, NeverPicksPastKvLimitWhileAnotherEngineHasRoom) {
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  Rng world(17);
  Rng rng(1);
  int checked = 0;
  for (int i = 0; i < 5000; ++i) {
    auto engines = IdleEngines(6, 100'000);
    for (auto& e : engines) {
      e.snapshot.kv_usage = 0.7 + 0.3 * world.Uniform();
      e.reserved_kv_tokens = static_cast<int64_t>(world.UniformInt(100'000));
      e.snapshot.waiting = static_cast<int64_t>(world.UniformInt(5));  // full engines look idle
      e.moe_pressure = 0.8 + 0.4 * world.Uniform();
    }
    DispatchRequest req = SmallRequest();
    req.prompt_tokens = 1 + static_cast<int64_t>(world.UniformInt(4000));
    const int e = p->Pick(req, engines, rng);
    ASSERT_GE(e, 0);
    const bool room = std::any_of(engines.begin(), engines.end(),
                                  [&](const EngineView& v) { return KvAfter(v, req) <= 0.95; });
    if (room) {
      ++checked;
      EXPECT_LE(KvAfter(engines[static_cast<size_t>(e)], req), 0.95);
    }
  }
  EXPECT_GT(checked, 500);  // the case was exercised
}

TEST(GimbalDispatch, WhenEveryEngineIsPastKvLimitStillPicksTheLeastFull) {
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3, 100'000);
  engines[0].snapshot.kv_usage = 0.99;
  engines[1].snapshot.kv_usage = 0.97;
  engines[2].snapshot.kv_usage = 0.999;
  Rng rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);
}

TEST(GimbalDispatch, FreshReservationsOverrideAStaleKvSnapshot) {
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(2, 100'000);
  // Engine 0 reported 10% a while ago, but the front end has since reserved 96% of it.
  engines[0].snapshot.kv_usage = 0.1;
  engines[0].reserved_kv_tokens = 96'000;
  engines[1].snapshot.kv_usage = 0.5;
  engines[1].snapshot.waiting = 20;
  Rng rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);
}

TEST(GimbalDispatch, EqualSnapshotsGiveUniformPicks) {
  // Statistical: 100,000 picks over 8 identical engines, each share within ±1% absolute of 12.5%
  // (the standard deviation of one share is about 0.1%).
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(8);
  for (auto& e : engines) {
    e.snapshot.waiting = 3;
    e.snapshot.running = 40;
    e.snapshot.kv_usage = 0.4;
    e.reserved_prefill = 2000;
    e.moe_pressure = 1.1;
  }
  const auto share = Shares(*p, SmallRequest(), engines, 100'000);
  for (double s : share) EXPECT_NEAR(s, 0.125, 0.01);
}

TEST(GimbalDispatch, AnEngineHoldingThePromptsPrefixCountsOnlyTheRestAsPrefill) {
  auto p = MustMake("gimbal", P({{"tie_epsilon", "0"}, {"w_cache", "0"}}));
  ASSERT_NE(p, nullptr);
  DispatchRequest r = SmallRequest();
  r.prompt_tokens = 4000;
  auto engines = IdleEngines(3);
  // Engine 1 has 2,000 more tokens of prefill pending, but holds 3,000 of this prompt's tokens:
  // it would compute 1,000 where the others compute 4,000, so it is the least loaded.
  engines[1].reserved_prefill = 2000;
  engines[1].cached_prompt_tokens = 3000;
  EXPECT_EQ(Shares(*p, r, engines, 200)[1], 1.0);
  // Holding less than the extra pending work does not pay.
  engines[1].cached_prompt_tokens = 1000;
  EXPECT_EQ(Shares(*p, r, engines, 200)[1], 0.0);
  // A cached count beyond the prompt counts as the whole prompt; a negative one as none.
  engines[1].reserved_prefill = 0;
  engines[1].cached_prompt_tokens = 1 << 20;
  EXPECT_EQ(Shares(*p, r, engines, 200)[1], 1.0);
  engines[1].cached_prompt_tokens = -5;
  EXPECT_NEAR(Shares(*p, r, engines, 3000)[1], 1.0 / 3, 0.05);
  // With w_pf and w_cache 0 the prefix does not matter.
  auto off = MustMake("gimbal", P({{"tie_epsilon", "0"}, {"w_pf", "0"}, {"w_cache", "0"}}));
  engines[1].cached_prompt_tokens = 3000;
  EXPECT_NEAR(Shares(*off, r, engines, 3000)[1], 1.0 / 3, 0.05);
}

TEST(GimbalDispatch, TheCacheBonusOutweighsSomeQueueingButNotAnyAmount) {
  DispatchRequest r = SmallRequest();
  r.prompt_tokens = 4000;
  auto engines = IdleEngines(2);
  engines[0].cached_prompt_tokens = 2048;  // a quarter of the 8,192-token budget B
  // Engine 0 holds the prefix: it saves w_pf 3 · 0.25 = 0.75 of prefill and gets the cache bonus
  // w_cache 6 · 0.25 = 1.5, together 2.25, worth 9 waiting requests (w_q 8 / 32 = 0.25 each).
  auto def = MustMake("gimbal", P({{"tie_epsilon", "0"}}));
  auto none = MustMake("gimbal", P({{"tie_epsilon", "0"}, {"w_cache", "0"}}));
  auto strong = MustMake("gimbal", P({{"tie_epsilon", "0"}, {"w_cache", "12"}}));
  ASSERT_TRUE(def && none && strong);
  // Ten more waiting requests (2.5) outweigh the default's 2.25: the request goes to engine 1...
  engines[0].snapshot.waiting = 10;
  EXPECT_EQ(Shares(*def, r, engines, 100)[1], 1.0);
  // ...while a bonus of 12 (3.0 + 0.75 saved) keeps it where its prefix is.
  EXPECT_EQ(Shares(*strong, r, engines, 100)[0], 1.0);
  // Eight (2.0) are outweighed by the default bonus plus the saved prefill.
  engines[0].snapshot.waiting = 8;
  EXPECT_EQ(Shares(*def, r, engines, 100)[0], 1.0);
  // Without the bonus only the saved prefill (0.75) counts: four waiting requests (1.0) move it.
  engines[0].snapshot.waiting = 4;
  EXPECT_EQ(Shares(*none, r, engines, 100)[1], 1.0);
  EXPECT_FALSE(MakeDispatchPolicy("gimbal", P({{"w_cache", "-1"}})).ok());
}

TEST(GimbalDispatch, StrictlyWorseOnOneSignalIsNeverChosen) {
  // With exact tie-breaking (tie_epsilon 0), an engine equal to the others on every signal but
  // one, and strictly worse on that one, never wins.
  auto p = MustMake("gimbal", P({{"tie_epsilon", "0"}}));
  ASSERT_NE(p, nullptr);
  for (const Signal& sig : AllSignals()) {
    auto engines = IdleEngines(4);
    for (auto& e : engines) sig.raise(e, 1);
    sig.raise(engines[2], 2);
    const auto share = Shares(*p, SmallRequest(), engines, 4000);
    EXPECT_EQ(share[2], 0.0) << sig.name;
    for (size_t i : {0u, 1u, 3u}) EXPECT_NEAR(share[i], 1.0 / 3, 0.05) << sig.name;
  }
}

TEST(GimbalDispatch, RaisingAnySignalNeverMakesAnEngineMoreLikely) {
  // Statistical, default parameters (near-ties randomised): along a ladder of increasing levels
  // of one signal on engine 0, its pick frequency over 20,000 picks never rises by more than the
  // tolerance 0.015 (about 5 standard deviations of a share near 0.25).
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  for (const Signal& sig : AllSignals()) {
    double previous = 1.0;
    for (int level = 0; level <= 12; ++level) {
      auto engines = IdleEngines(4);
      for (auto& e : engines) sig.raise(e, 1);
      sig.raise(engines[0], level);
      const double share = Shares(*p, SmallRequest(), engines, 20'000, 100 + level)[0];
      EXPECT_LE(share, previous + 0.015) << sig.name << " level " << level;
      previous = std::min(previous, share);
    }
    EXPECT_LT(previous, 0.01) << sig.name << ": the top level should lose every pick";
  }
}

TEST(GimbalDispatch, ASignalWithWeightZeroIsIgnored) {
  // Engine 0 is far worse on one signal (not past the KV limit); with that signal's weight at 0
  // the picks stay uniform: each share within 0.015 of 0.25 over 40,000 picks.
  for (const Signal& sig : AllSignals()) {
    auto p = MustMake("gimbal", P({{sig.weight, "0"}}));
    ASSERT_NE(p, nullptr);
    auto engines = IdleEngines(4);
    for (auto& e : engines) sig.raise(e, 1);
    sig.raise(engines[0], 30);
    const auto share = Shares(*p, SmallRequest(), engines, 40'000);
    for (double s : share) EXPECT_NEAR(s, 0.25, 0.015) << sig.name;
    // And with the default weight the same engine loses.
    auto d = MustMake("gimbal");
    EXPECT_LT(Shares(*d, SmallRequest(), engines, 4000)[0], 0.01) << sig.name;
  }
}

TEST(GimbalDispatch, SoftAffinityKeepsAKeyOnOneEngineWithinSlack) {
  // w_q pinned to 1 so the waiting counts below translate into the stated score gaps.
  auto p = MustMake("gimbal", P({{"w_affinity", "1"}, {"affinity_slack", "0.1"}, {"w_q", "1"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(8);
  DispatchRequest req = SmallRequest();
  Rng rng(5);
  std::set<int> targets;
  for (uint64_t key = 1; key <= 64; ++key) {
    req.affinity_key = key;
    const int t = p->Pick(req, engines, rng);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(p->Pick(req, engines, rng), t);
    targets.insert(t);
    // A little more load keeps the key in place ...
    auto busier = engines;
    busier[static_cast<size_t>(t)].snapshot.waiting = 2;  // +2/32 = 0.0625 < slack
    EXPECT_EQ(p->Pick(req, busier, rng), t);
    // ... too much releases it.
    busier[static_cast<size_t>(t)].snapshot.waiting = 8;  // +0.25 > slack
    EXPECT_NE(p->Pick(req, busier, rng), t);
  }
  EXPECT_GE(targets.size(), 6u);  // keys spread over the engines
}

TEST(GimbalDispatch, AffinityIsOffByDefault) {
  auto p = MustMake("gimbal");
  ASSERT_NE(p, nullptr);
  DispatchRequest req = SmallRequest();
  req.affinity_key = 12345;
  const auto share = Shares(*p, req, IdleEngines(4), 20'000);
  for (double s : share) EXPECT_NEAR(s, 0.25, 0.015);
}

TEST(GimbalDispatch, SnapshotPrefillIsUsedWhenLargerThanReservations) {
  auto p = MustMake("gimbal", P({{"tie_epsilon", "0"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(2);
  engines[0].snapshot.prefill_pending_tokens = 16'000;  // another front end's traffic
  engines[1].reserved_prefill = 8'000;
  Rng rng(1);
  EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);
}

// Class locality: a hinted request prefers the engines whose node serves more of its class's
// expert traffic, within class_slack of the best score; without a hint the term is absent.
TEST(GimbalDispatch, ClassHintPrefersTheMostLocalEngine) {
  auto p = MustMake("gimbal", P({{"w_class", "0.25"}, {"class_slack", "0.25"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(4);
  const double locality[] = {0.2, 0.6, 0.3, 0.25};
  for (size_t i = 0; i < engines.size(); ++i) engines[i].class_locality = locality[i];
  DispatchRequest req = SmallRequest();
  req.class_hint = 2;
  const auto hinted = Shares(*p, req, engines, 2'000);
  EXPECT_DOUBLE_EQ(hinted[1], 1.0);
  // No hint: the localities are not read, the idle engines tie.
  req.class_hint = -1;
  const auto plain = Shares(*p, req, engines, 20'000);
  for (double s : plain) EXPECT_NEAR(s, 0.25, 0.015);
}

TEST(GimbalDispatch, ClassLocalityNeverOutweighsMoreThanItsSlack) {
  auto p =
      MustMake("gimbal", P({{"w_class", "0.25"}, {"class_slack", "0.25"}, {"tie_epsilon", "0"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(2);
  engines[0].class_locality = 0.1;
  engines[1].class_locality = 0.9;
  DispatchRequest req = SmallRequest();
  req.class_hint = 0;
  Rng rng(3);
  // Two more waiting requests (w_q 8 / N 32: +0.5) put engine 1 beyond the slack: the load wins.
  engines[1].snapshot.waiting = 2;
  EXPECT_EQ(p->Pick(req, engines, rng), 0);
  // One more waiting request and 1024 reserved prompt tokens (+0.25 + 0.125): still beyond it.
  engines[1].snapshot.waiting = 1;
  engines[1].reserved_prefill = 1024;
  EXPECT_EQ(p->Pick(req, engines, rng), 0);
  // A small imbalance (+0.0625 from reserved prefill) is outweighed by the locality bonus.
  engines[1].snapshot.waiting = 0;
  engines[1].reserved_prefill = 512;
  EXPECT_EQ(p->Pick(req, engines, rng), 1);
  // w_class = 0 removes the term: the lighter engine wins.
  auto off = MustMake("gimbal", P({{"w_class", "0"}, {"tie_epsilon", "0"}}));
  EXPECT_EQ(off->Pick(req, engines, rng), 0);
}

TEST(GimbalDispatch, ClassLocalityIgnoredWhenAllEnginesAreEqual) {
  auto p = MustMake("gimbal", P({{"tie_epsilon", "0"}}));
  ASSERT_NE(p, nullptr);
  auto engines = IdleEngines(3);
  for (auto& e : engines) e.class_locality = 0.4;
  engines[2].reserved_prefill = 256;
  DispatchRequest req = SmallRequest();
  req.class_hint = 1;
  Rng rng(5);
  const int e = p->Pick(req, engines, rng);
  EXPECT_TRUE(e == 0 || e == 1) << e;
}

TEST(GimbalDispatch, NegativeClassWeightIsRejected) {
  auto bad = MakeDispatchPolicy("gimbal", P({{"w_class", "-1"}}), dispatch_test::TestDeps());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("w_class"), std::string::npos) << bad.status().message();
  auto slack =
      MakeDispatchPolicy("gimbal", P({{"class_slack", "-0.1"}}), dispatch_test::TestDeps());
  ASSERT_FALSE(slack.ok());
  EXPECT_NE(slack.status().message().find("class_slack"), std::string::npos);
}
}  // namespace
}  // namespace gimbal
