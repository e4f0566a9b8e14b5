#include "core/frontend_ledger.h"

#include <limits>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

EngineView View(const FrontendLedger& l, int e) {
  EngineView v;
  l.FillView(e, v);
  return v;
}

// A client's max_tokens reaches the ledger unchecked: INT64_MAX once wrapped the engine's sum to a
// negative reservation (signed overflow), which made the engine look empty to every dispatcher.
TEST(FrontendLedger, AHugeOutputCapCountsAsTheBoundAndNeverWraps) {
  FrontendLedger l(1);
  const int64_t most = std::numeric_limits<int64_t>::max();
  LedgerTicket a = l.Dispatch(0, 100, most);
  LedgerTicket b = l.Dispatch(0, most, most);
  EXPECT_EQ(a.kv_tokens, 100 + kMaxLedgerTokens);
  EXPECT_EQ(b.prompt_tokens, kMaxLedgerTokens);
  EXPECT_EQ(b.kv_tokens, 2 * kMaxLedgerTokens);
  EngineView v = View(l, 0);
  EXPECT_EQ(v.reserved_kv_tokens, 100 + 3 * kMaxLedgerTokens);
  EXPECT_EQ(v.reserved_prefill, 100 + kMaxLedgerTokens);
  l.Finish(a);
  l.Finish(b);
  v = View(l, 0);
  EXPECT_EQ(v.reserved_kv_tokens, 0);
  EXPECT_EQ(v.reserved_prefill, 0);
  EXPECT_EQ(v.inflight, 0);
}

TEST(FrontendLedger, ReservesPromptPlusMaxTokensUntilFinish) {
  FrontendLedger l(2);
  LedgerTicket a = l.Dispatch(0, 100, 50);
  LedgerTicket b = l.Dispatch(0, 30, 0);  // no max_tokens: the prompt alone
  EXPECT_EQ(a.engine, 0);
  EXPECT_EQ(a.kv_tokens, 150);
  EXPECT_EQ(b.kv_tokens, 30);
  EngineView v = View(l, 0);
  EXPECT_EQ(v.inflight, 2);
  EXPECT_EQ(v.reserved_prefill, 130);
  EXPECT_EQ(v.reserved_kv_tokens, 180);
  EXPECT_EQ(v.picks_since_snapshot, 2);
  EXPECT_EQ(View(l, 1).inflight, 0);

  l.FirstToken(a);
  l.FirstToken(a);  // idempotent
  v = View(l, 0);
  EXPECT_EQ(v.reserved_prefill, 30);
  EXPECT_EQ(v.reserved_kv_tokens, 180);  // KV stays reserved until the finish
  EXPECT_EQ(v.inflight, 2);

  l.Finish(b);  // finishing before the first token settles the prefill too
  l.Finish(b);
  v = View(l, 0);
  EXPECT_EQ(v.inflight, 1);
  EXPECT_EQ(v.reserved_prefill, 0);
  EXPECT_EQ(v.reserved_kv_tokens, 150);

  l.Finish(a);
  v = View(l, 0);
  EXPECT_EQ(v.inflight, 0);
  EXPECT_EQ(v.reserved_kv_tokens, 0);
  EXPECT_EQ(v.picks_since_snapshot, 2);  // only a snapshot resets picks
  EXPECT_EQ(l.dispatched(0), 2);
  l.SnapshotTaken(0);
  EXPECT_EQ(View(l, 0).picks_since_snapshot, 0);
  EXPECT_EQ(l.dispatched(0), 2);
}

TEST(FrontendLedger, ACachedPrefixIsNotReservedAsPrefill) {
  FrontendLedger l(1);
  LedgerTicket a = l.Dispatch(0, 100, 50, 64);  // 64 of 100 prompt tokens expected cached
  LedgerTicket b = l.Dispatch(0, 30, 0, 500);   // more than the prompt: all of it
  LedgerTicket c = l.Dispatch(0, 30, 0, -5);    // negative: none
  EXPECT_EQ(a.prefill_tokens, 36);
  EXPECT_EQ(b.prefill_tokens, 0);
  EXPECT_EQ(c.prefill_tokens, 30);
  EngineView v = View(l, 0);
  EXPECT_EQ(v.reserved_prefill, 36 + 0 + 30);
  EXPECT_EQ(v.reserved_kv_tokens, 150 + 30 + 30);  // the KV footprint is the whole prompt
  l.FirstToken(a);
  EXPECT_EQ(View(l, 0).reserved_prefill, 30);
  l.Finish(b);
  l.Finish(c);
  l.Finish(a);
  v = View(l, 0);
  EXPECT_EQ(v.reserved_prefill, 0);
  EXPECT_EQ(v.reserved_kv_tokens, 0);
}

TEST(FrontendLedger, UndispatchedTicketsAndNegativeCountsChangeNothing) {
  FrontendLedger l(1);
  LedgerTicket none;
  l.FirstToken(none);
  l.Finish(none);
  EXPECT_EQ(View(l, 0).inflight, 0);
  LedgerTicket t = l.Dispatch(0, -5, -7);
  EXPECT_EQ(t.prompt_tokens, 0);
  EXPECT_EQ(t.kv_tokens, 0);
  EXPECT_EQ(View(l, 0).reserved_kv_tokens, 0);
  EXPECT_EQ(View(l, 0).inflight, 1);
}

TEST(FrontendLedger, HidesAnEngineAtItsLimitAndShowsItAgainAfterAFinish) {
  FrontendLedger l(std::vector<int64_t>{2, 0});  // engine 1: no limit
  LedgerTicket a = l.Dispatch(0, 10, 10);
  EXPECT_FALSE(l.AtLimit(0));
  EXPECT_TRUE(View(l, 0).healthy);
  LedgerTicket b = l.Dispatch(0, 10, 10);
  EXPECT_TRUE(l.AtLimit(0));
  EXPECT_FALSE(View(l, 0).healthy);
  for (int i = 0; i < 1000; ++i) l.Dispatch(1, 1, 1);
  EXPECT_FALSE(l.AtLimit(1));
  EXPECT_TRUE(View(l, 1).healthy);

  // Account alone fills the counts and leaves health as it was.
  EngineView v;
  l.Account(0, v);
  EXPECT_TRUE(v.healthy);
  EXPECT_EQ(v.inflight, 2);
  // FillView never marks an unhealthy engine healthy.
  v.healthy = false;
  l.FillView(1, v);
  EXPECT_FALSE(v.healthy);

  l.FirstToken(a);
  EXPECT_TRUE(l.AtLimit(0));  // a first token frees no in-flight slot
  l.Finish(b);
  EXPECT_FALSE(l.AtLimit(0));
  EXPECT_TRUE(View(l, 0).healthy);
}

TEST(FrontendLedgerDeathTest, AnEngineOutOfRangeIsAProgrammingError) {
  FrontendLedger l(1);
  EXPECT_DEATH(l.Dispatch(1, 1, 1), "out of range");
  EXPECT_DEATH(l.SnapshotTaken(-1), "out of range");
}

}  // namespace
}  // namespace gimbal
