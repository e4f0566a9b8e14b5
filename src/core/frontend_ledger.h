// FrontendLedger: a front end's own exact accounting of what it dispatched to each engine.
//
// Every EngineView a dispatch policy sees joins an engine's last snapshot (which ages) with this
// ledger (which is exact). The simulator and the router's EngineTable keep the same ledger, so a
// policy sees the same numbers in both. Per engine it counts:
//   inflight              requests dispatched and not finished
//   reserved_prefill      prompt tokens of those whose first token has not arrived, less the ones
//                         the front end expected the engine to find in its prefix cache
//   reserved_kv_tokens    prompt + max_tokens of those in flight: the most KV they may hold. A
//                         front end cannot know a request's true output length, only the cap the
//                         client sent (0 when it sent none: the prompt alone is reserved)
//   picks_since_snapshot  dispatches since the engine's last snapshot was applied
//   dispatched            dispatches since the start (never decreases)
// and an optional in-flight limit: an engine with inflight >= its limit is at its limit, and
// FillView hides it from the policy (healthy = false). A limit <= 0 means none.
//
// Events, in the order a request lives them: Dispatch when the policy picked the engine (returns
// the request's ticket), FirstToken when its first token arrived (its prompt is prefilled),
// Finish when it ended with any outcome (settles the prefill too). FirstToken and Finish are
// idempotent on a ticket. SnapshotTaken when a fresh snapshot of the engine is applied.
//
// Not thread-safe: the owner serialises calls (EngineTable under its mutex; the simulator is
// single-threaded). Engine indices must be in [0, size()); anything else is a programming error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/engine_state.h"

namespace gimbal {

// The most tokens one request counts for, as prompt and as output cap (2^36, far above any
// model's context). A client's max_tokens may be anything up to INT64_MAX; held to this bound, the
// per-engine sums cannot overflow (that takes 2^26 requests in flight on one engine).
inline constexpr int64_t kMaxLedgerTokens = int64_t{1} << 36;

// What the ledger holds for one dispatched request, until Finish.
struct LedgerTicket {
  int engine = -1;  // -1: not dispatched (FirstToken and Finish do nothing)
  int64_t prompt_tokens = 0;
  int64_t prefill_tokens = 0;  // prompt_tokens less those expected cached
  int64_t kv_tokens = 0;       // prompt_tokens + max_tokens
  bool prefill_settled = false;
  bool released = false;
};

class FrontendLedger {
 public:
  // `max_inflight[e]` is engine e's in-flight limit (<= 0: none); one entry per engine.
  explicit FrontendLedger(std::vector<int64_t> max_inflight);
  // `engines` engines without limits.
  explicit FrontendLedger(size_t engines) : FrontendLedger(std::vector<int64_t>(engines, 0)) {}

  size_t size() const { return rows_.size(); }

  // Reserves prompt_tokens - cached_tokens of prefill and prompt + max_tokens of KV on engine `e`
  // (negative counts count as 0, larger ones as kMaxLedgerTokens; cached_tokens at most
  // prompt_tokens) and counts a pick.
  LedgerTicket Dispatch(int e, int64_t prompt_tokens, int64_t max_tokens,
                        int64_t cached_tokens = 0);
  void FirstToken(LedgerTicket& t);
  void Finish(LedgerTicket& t);
  void SnapshotTaken(int e);

  bool AtLimit(int e) const;
  int64_t dispatched(int e) const;
  // Writes engine e's counts into the accounting fields of `v` (inflight, reserved_prefill,
  // reserved_kv_tokens, picks_since_snapshot); leaves the rest of `v` alone.
  void Account(int e, EngineView& v) const;
  // What a dispatcher sees: Account, and healthy = false when the engine is at its limit.
  void FillView(int e, EngineView& v) const;

 private:
  struct Row {
    int64_t max_inflight = 0;
    int64_t inflight = 0;
    int64_t reserved_prefill = 0;
    int64_t reserved_kv = 0;
    int64_t picks_since_snapshot = 0;
    int64_t dispatched = 0;
  };
  Row& row(int e);
  const Row& row(int e) const;

  std::vector<Row> rows_;
};

}  // namespace gimbal
