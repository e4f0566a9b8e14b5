#include "router/engine_table.h"

#include <gtest/gtest.h>

#include "router/prefix_cache.h"

namespace gimbal::router {
namespace {

class FirstEligible : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest&, std::span<const EngineView> e, Rng&) const override {
    for (int i = 0; i < static_cast<int>(e.size()); ++i) {
      if (e[i].healthy) return i;
    }
    return -1;
  }
  std::string name() const override { return "first"; }
};

EngineTable Table() {
  return EngineTable({{"a", "m", 2}, {"b", "m", 2}, {"c", "other", 2}}, 2, 1, 1);
}

TEST(EngineTable, ReservesAndSettles) {
  EngineTable t = Table();
  FirstEligible p;
  DispatchRequest req;
  req.prompt_tokens = 100;
  req.max_output_tokens = 10;
  auto r = t.Pick(p, req, "m", {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->engine, 0);
  auto row = t.Rows(0)[0];
  EXPECT_EQ(row.view.inflight, 1);
  EXPECT_EQ(row.view.reserved_prefill, 100);
  EXPECT_EQ(row.view.reserved_kv_tokens, 110);
  EXPECT_EQ(row.view.picks_since_snapshot, 1);
  t.SettlePrefill(r.value());
  t.SettlePrefill(r.value());
  EXPECT_EQ(t.Rows(0)[0].view.reserved_prefill, 0);
  t.Release(r.value());
  t.Release(r.value());
  EXPECT_EQ(t.Rows(0)[0].view.inflight, 0);
  EXPECT_EQ(t.Rows(0)[0].view.reserved_kv_tokens, 0);
  t.ApplySnapshot(0, EngineSnapshot{.waiting = 3, .taken_at = 1});
  EXPECT_EQ(t.Rows(1.5)[0].view.picks_since_snapshot, 0);
  EXPECT_DOUBLE_EQ(t.Rows(1.5)[0].view.snapshot_age, 0.5);
}

// Picks the healthy engine holding the most of the prompt (lowest index on ties).
class MostCached : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest&, std::span<const EngineView> e, Rng&) const override {
    int best = -1;
    for (int i = 0; i < static_cast<int>(e.size()); ++i) {
      if (e[i].healthy && (best < 0 || e[i].cached_prompt_tokens > e[best].cached_prompt_tokens))
        best = i;
    }
    return best;
  }
  std::string name() const override { return "most-cached"; }
};

TEST(EngineTable, PicksSeeTheCachedPrefixAndReserveOnlyTheRest) {
  PrefixCacheConfig pc;
  pc.index = PrefixIndexMode::kApproximate;
  pc.block_tokens = 10;
  auto cache = PrefixCache::Create(pc, std::vector<BackendConfig>(2));
  ASSERT_TRUE(cache.ok());
  EngineTable t({{"a", "m", 8}, {"b", "m", 8}}, 2, 1, 1);
  t.set_prefix_cache(cache->get());
  MostCached p;
  DispatchRequest req;
  req.prompt_tokens = 100;
  req.max_output_tokens = 10;
  const std::vector<uint64_t> first = {11, 12, 13};
  const std::vector<uint64_t> longer = {11, 12, 13, 14, 15};
  // Nothing cached: engine 0; the whole prompt is reserved as prefill.
  auto r0 = t.Pick(p, req, "m", {1}, first);  // engine 1 excluded
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->engine, 0);
  EXPECT_EQ(t.Rows(0)[0].view.reserved_prefill, 100);
  (*cache)->Record(0, first, 0);  // engine 0 accepted it (the proxy records on its 200)
  t.Release(r0.value());
  // The longer prompt shares three blocks with what engine 0 was sent.
  auto r1 = t.Pick(p, req, "m", {}, longer);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->engine, 0);
  EXPECT_EQ(t.Rows(0)[0].view.reserved_prefill, 70);
  EXPECT_EQ(t.Rows(0)[0].view.reserved_kv_tokens, 110);
  EXPECT_EQ(r1->prompt_tokens - r1->prefill_tokens, 30);  // what the proxy records as matched
  // Another engine excluded from the first pick holds nothing.
  auto r2 = t.Pick(p, req, "m", {0}, longer);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->engine, 1);
  EXPECT_EQ(t.Rows(0)[1].view.reserved_prefill, 100);
}

// Records the class locality each engine showed the last pick.
class RecordsLocality : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest&, std::span<const EngineView> e, Rng&) const override {
    seen.clear();
    for (const auto& v : e) seen.push_back(v.class_locality);
    return 0;
  }
  std::string name() const override { return "records-locality"; }
  mutable std::vector<double> seen;
};

TEST(EngineTable, AHintedPickSeesEachEnginesPushedLocalityForItsClass) {
  EngineTable t({{"a", "m", 8}, {"b", "m", 8}}, 2, 1, 1);
  t.ApplyPushedSnapshot(0, EngineSnapshot{.taken_at = 1}, 1.0, {0.9, 0.1});
  t.ApplyPushedSnapshot(1, EngineSnapshot{.taken_at = 1}, 1.0, {0.2});
  RecordsLocality p;
  DispatchRequest req;
  req.prompt_tokens = 10;
  req.class_hint = 0;
  ASSERT_TRUE(t.Pick(p, req, "m", {}).ok());
  EXPECT_EQ(p.seen, (std::vector<double>{0.9, 0.2}));
  req.class_hint = 1;  // engine 1 reports no class 1: nothing known
  ASSERT_TRUE(t.Pick(p, req, "m", {}).ok());
  EXPECT_EQ(p.seen, (std::vector<double>{0.1, 0.0}));
  req.class_hint = -1;  // no hint: no locality
  ASSERT_TRUE(t.Pick(p, req, "m", {}).ok());
  EXPECT_EQ(p.seen, (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(t.class_locality(0), (std::vector<double>{0.9, 0.1}));
}

TEST(EngineTable, PushedSnapshotsWinOverScrapedOnesUntilStale) {
  EngineTable t({{"a", "m", 2}}, 2, 1, 1, /*push_stale_s=*/3);
  EXPECT_FALSE(t.PushFresh(0, 0));
  EXPECT_TRUE(t.ApplySnapshot(0, EngineSnapshot{.waiting = 5, .taken_at = 1}));
  t.ApplyPushedSnapshot(0,
                        EngineSnapshot{.waiting = 1, .prefill_pending_tokens = 700, .taken_at = 2},
                        /*moe_pressure=*/1.4);
  EXPECT_TRUE(t.PushFresh(0, 4.9));
  EXPECT_FALSE(t.ApplySnapshot(0, EngineSnapshot{.waiting = 9, .taken_at = 4.9}));
  auto row = t.Rows(4.9)[0];
  EXPECT_TRUE(row.pushed);
  EXPECT_EQ(row.view.snapshot.waiting, 1);
  EXPECT_EQ(row.view.snapshot.prefill_pending_tokens, 700);
  EXPECT_DOUBLE_EQ(row.view.moe_pressure, 1.4);
  // Three seconds without a push: scraped state takes over.
  EXPECT_FALSE(t.PushFresh(0, 5));
  EXPECT_TRUE(t.ApplySnapshot(0, EngineSnapshot{.waiting = 9, .taken_at = 5}));
  EXPECT_FALSE(t.Rows(5)[0].pushed);
  EXPECT_EQ(t.Rows(5)[0].view.snapshot.waiting, 9);
  // What only the push carried goes with it: the last pushed MoE pressure and class locality
  // steered dispatch for good once an engine stopped pushing.
  EXPECT_DOUBLE_EQ(t.Rows(5)[0].view.moe_pressure, 1.0);
  t.ApplyPushedSnapshot(0, EngineSnapshot{.taken_at = 6}, 10000, {0.9});
  EXPECT_TRUE(t.ApplySnapshot(0, EngineSnapshot{.taken_at = 9.5}));
  EXPECT_DOUBLE_EQ(t.Rows(9.5)[0].view.moe_pressure, 1.0);
  EXPECT_TRUE(t.class_locality(0).empty());
}

// An engine whose state cannot be read is seen through the router's own accounting once its
// snapshot is stale: the picks counted since its last snapshot no longer grow for good.
TEST(EngineTable, AStaleSnapshotGivesWayToTheRoutersOwnAccounting) {
  EngineTable t({{"a", "m", 8}}, 2, 1, 1, /*push_stale_s=*/3);
  FirstEligible p;
  DispatchRequest req;
  req.prompt_tokens = 10;
  EXPECT_TRUE(t.UseOwnAccounting(0, 0, 1));  // no snapshot yet: at once
  EXPECT_TRUE(t.Rows(0)[0].own_accounting);
  ASSERT_TRUE(t.ApplySnapshot(
      0, EngineSnapshot{.waiting = 5, .kv_usage = 0.9, .kv_capacity_tokens = 1000, .taken_at = 1}));
  EXPECT_FALSE(t.Rows(1)[0].own_accounting);
  std::vector<Reservation> held;
  for (int i = 0; i < 3; ++i) held.push_back(*t.Pick(p, req, "m", {}));
  t.Release(held[0]);
  EXPECT_FALSE(t.UseOwnAccounting(0, 1.5, 1));  // still fresh
  EXPECT_EQ(t.Rows(1.5)[0].view.picks_since_snapshot, 3);
  EXPECT_TRUE(t.UseOwnAccounting(0, 2.5, 1));
  const EngineRow row = t.Rows(2.5)[0];
  EXPECT_TRUE(row.own_accounting);
  EXPECT_EQ(row.view.picks_since_snapshot, 0);
  EXPECT_EQ(row.view.snapshot.waiting, 0);
  EXPECT_EQ(row.view.snapshot.running, 2);  // in flight now
  EXPECT_EQ(row.view.snapshot.kv_usage, 0);
  EXPECT_EQ(row.view.snapshot.kv_capacity_tokens, 1000);  // kept: a property of the engine
  EXPECT_EQ(row.view.snapshot.prefill_pending_tokens, -1);
  // Fresh pushed state is never replaced.
  t.ApplyPushedSnapshot(0, EngineSnapshot{.waiting = 7, .taken_at = 3}, 1.0);
  EXPECT_FALSE(t.UseOwnAccounting(0, 5, 1));
  EXPECT_EQ(t.Rows(5)[0].view.snapshot.waiting, 7);
  for (auto& r : held) t.Release(r);
}

TEST(EngineTable, SaturationExclusionModelAndHealth) {
  EngineTable t = Table();
  FirstEligible p;
  DispatchRequest req;
  std::vector<Reservation> held;
  for (int i = 0; i < 4; ++i) {
    auto r = t.Pick(p, req, "m", {});
    ASSERT_TRUE(r.ok());
    held.push_back(r.value());
  }
  auto full = t.Pick(p, req, "m", {});
  EXPECT_EQ(full.status().code(), ErrorCode::kResourceExhausted);
  for (auto& r : held) t.Release(r);
  EXPECT_EQ(t.Pick(p, req, "m", {0})->engine, 1);
  EXPECT_EQ(t.Pick(p, req, "other", {})->engine, 2);
  EXPECT_EQ(t.Pick(p, req, "nope", {}).status().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(t.ReportHealth(0, false));
  EXPECT_TRUE(t.ReportHealth(0, false));  // ejected after 2 failures
  EXPECT_FALSE(t.healthy(0));
  EXPECT_EQ(t.Pick(p, req, "m", {1}).status().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(t.ReportHealth(0, true));  // readmitted after 1 success
  EXPECT_EQ(t.Rows(0)[0].ejections, 1);
  // Failed probes and failed requests are counted apart. An answered request clears failed
  // requests only: a draining engine answers its requests while /health says 503, and is
  // ejected by the probes all the same. Answers never readmit; only probes do.
  EXPECT_FALSE(t.ReportHealth(0, false));
  t.ReportAnswered(0);
  EXPECT_TRUE(t.ReportHealth(0, false));  // two failed probes in a row
  for (int i = 0; i < 5; ++i) t.ReportAnswered(0);
  EXPECT_FALSE(t.healthy(0));
  EXPECT_TRUE(t.ReportHealth(0, true));
  // A good probe does not clear failed requests; an answer does.
  EXPECT_EQ(t.ReportFailedRequest(0), FailedRequest::kCounted);
  EXPECT_FALSE(t.ReportHealth(0, true));
  EXPECT_EQ(t.ReportFailedRequest(0), FailedRequest::kEjected);  // two failed requests in a row
  EXPECT_EQ(t.Rows(0)[0].ejections, 3);
  EXPECT_TRUE(t.ReportHealth(0, true));
  EXPECT_EQ(t.ReportFailedRequest(0), FailedRequest::kCounted);  // readmitted: starts afresh
  t.ReportAnswered(0);
  EXPECT_EQ(t.ReportFailedRequest(0), FailedRequest::kCounted);
  EXPECT_TRUE(t.healthy(0));
}

// Failed requests, which a client may cause, take out engines only while fewer than half of a
// model's engines (the default max_ejected_fraction) are out for any reason; probes are not
// capped.
TEST(EngineTable, FailedRequestsEjectAtMostTheCapOfAModelsEngines) {
  EngineTable t({{"a", "m", 8}, {"b", "m", 8}, {"c", "m", 8}, {"d", "m", 8}, {"e", "other", 8}},
                /*failures_to_eject=*/2, /*successes_to_readmit=*/1, 1);
  auto fail_run = [&](int e) {
    EXPECT_EQ(t.ReportFailedRequest(e), FailedRequest::kCounted) << e;
    return t.ReportFailedRequest(e);
  };
  EXPECT_EQ(fail_run(0), FailedRequest::kEjected);
  EXPECT_EQ(fail_run(1), FailedRequest::kEjected);
  // Two of the four "m" engines are out: the third stays in, reported once per run.
  EXPECT_EQ(fail_run(2), FailedRequest::kKeptAtCap);
  EXPECT_EQ(t.ReportFailedRequest(2), FailedRequest::kCounted);
  EXPECT_TRUE(t.healthy(2));
  // The only "other" engine: floor(1 x 0.5) = 0 may go.
  EXPECT_EQ(fail_run(4), FailedRequest::kKeptAtCap);
  EXPECT_TRUE(t.healthy(4));
  FirstEligible p;
  EXPECT_EQ(t.Pick(p, DispatchRequest{}, "m", {})->engine, 2);  // kept in, and picked
  std::vector<EngineRow> rows = t.Rows(0);
  EXPECT_TRUE(rows[0].ejected_on_requests);
  EXPECT_FALSE(rows[2].ejected_on_requests);
  // A good probe readmits engine 0: the next failure in engine 2's run takes its place.
  EXPECT_TRUE(t.ReportHealth(0, true));
  EXPECT_EQ(t.ReportFailedRequest(2), FailedRequest::kEjected);
  EXPECT_FALSE(t.healthy(2));
  // Engine 1's probes fail too: out on their account now, and still out, so engine 3 stays in.
  EXPECT_FALSE(t.ReportHealth(1, false));
  EXPECT_FALSE(t.ReportHealth(1, false));  // already out: no change of health
  EXPECT_FALSE(t.Rows(0)[1].ejected_on_requests);
  EXPECT_EQ(fail_run(3), FailedRequest::kKeptAtCap);
  // Probes are not capped: engine 0 goes on its probes although two are out already, and with
  // three of four out, failed requests still leave engine 3 in.
  EXPECT_FALSE(t.ReportHealth(0, false));
  EXPECT_TRUE(t.ReportHealth(0, false));
  EXPECT_EQ(t.ReportFailedRequest(3), FailedRequest::kCounted);
  EXPECT_EQ(t.Pick(p, DispatchRequest{}, "m", {})->engine, 3);
  // Engines down on their probes count too: with two of four down, a client takes out none.
  EngineTable down({{"a", "m", 8}, {"b", "m", 8}, {"c", "m", 8}, {"d", "m", 8}}, 2, 1, 1);
  for (int e : {0, 1}) {
    down.ReportHealth(e, false);
    EXPECT_TRUE(down.ReportHealth(e, false));
  }
  EXPECT_EQ(down.ReportFailedRequest(2), FailedRequest::kCounted);
  EXPECT_EQ(down.ReportFailedRequest(2), FailedRequest::kKeptAtCap);
  // The whole cap is the operator's to set: 1 lets failed requests take out every engine.
  EngineTable all({{"a", "m", 8}}, 2, 1, 1, /*push_stale_s=*/3, /*max_ejected_fraction=*/1);
  EXPECT_EQ(all.ReportFailedRequest(0), FailedRequest::kCounted);
  EXPECT_EQ(all.ReportFailedRequest(0), FailedRequest::kEjected);
}

TEST(EngineTable, ViewsRowsAndDispatchCountsComeFromTheLedger) {
  // max_inflight 0: no limit (the ledger's convention); a snapshot resets picks, not in-flight.
  EngineTable t({{"a", "m", 0}}, 2, 1, 1);
  FirstEligible p;
  DispatchRequest req;
  req.prompt_tokens = 7;
  req.max_output_tokens = 3;
  std::vector<Reservation> held;
  for (int i = 0; i < 300; ++i) {
    auto r = t.Pick(p, req, "m", {});
    ASSERT_TRUE(r.ok()) << i;
    held.push_back(*r);
  }
  EXPECT_TRUE(t.ApplySnapshot(0, EngineSnapshot{.taken_at = 1}));
  const EngineView v = t.view(0);
  EXPECT_EQ(v.inflight, 300);
  EXPECT_EQ(v.reserved_prefill, 300 * 7);
  EXPECT_EQ(v.reserved_kv_tokens, 300 * 10);
  EXPECT_EQ(v.picks_since_snapshot, 0);
  t.SettlePrefill(held[0]);
  t.Release(held[1]);
  const EngineRow row = t.Rows(1)[0];
  EXPECT_EQ(row.view.inflight, 299);
  EXPECT_EQ(row.view.reserved_prefill, 298 * 7);
  EXPECT_EQ(row.view.reserved_kv_tokens, 299 * 10);
  EXPECT_EQ(row.dispatched_total, 300);
}

}  // namespace
}  // namespace gimbal::router
