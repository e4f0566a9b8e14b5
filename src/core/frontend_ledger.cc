#include "core/frontend_ledger.h"

#include <algorithm>

#include "core/status.h"

namespace gimbal {

FrontendLedger::FrontendLedger(std::vector<int64_t> max_inflight) : rows_(max_inflight.size()) {
  for (size_t i = 0; i < rows_.size(); ++i) rows_[i].max_inflight = max_inflight[i];
}

const FrontendLedger::Row& FrontendLedger::row(int e) const {
  GIMBAL_CHECK(e >= 0 && static_cast<size_t>(e) < rows_.size(),
               "FrontendLedger: engine index out of range");
  return rows_[static_cast<size_t>(e)];
}

FrontendLedger::Row& FrontendLedger::row(int e) {
  return const_cast<Row&>(static_cast<const FrontendLedger*>(this)->row(e));
}

LedgerTicket FrontendLedger::Dispatch(int e, int64_t prompt_tokens, int64_t max_tokens,
                                      int64_t cached_tokens) {
  Row& r = row(e);
  LedgerTicket t;
  t.engine = e;
  t.prompt_tokens = std::clamp<int64_t>(prompt_tokens, 0, kMaxLedgerTokens);
  t.prefill_tokens = t.prompt_tokens - std::clamp<int64_t>(cached_tokens, 0, t.prompt_tokens);
  t.kv_tokens = t.prompt_tokens + std::clamp<int64_t>(max_tokens, 0, kMaxLedgerTokens);
  r.inflight += 1;
  r.reserved_prefill += t.prefill_tokens;
  r.reserved_kv += t.kv_tokens;
  r.picks_since_snapshot += 1;
  r.dispatched += 1;
  return t;
}

void FrontendLedger::FirstToken(LedgerTicket& t) {
  if (t.engine < 0 || t.prefill_settled) return;
  row(t.engine).reserved_prefill -= t.prefill_tokens;
  t.prefill_settled = true;
}

void FrontendLedger::Finish(LedgerTicket& t) {
  if (t.engine < 0 || t.released) return;
  FirstToken(t);
  Row& r = row(t.engine);
  r.inflight -= 1;
  r.reserved_kv -= t.kv_tokens;
  t.released = true;
}

void FrontendLedger::SnapshotTaken(int e) {
  row(e).picks_since_snapshot = 0;
}

bool FrontendLedger::AtLimit(int e) const {
  const Row& r = row(e);
  return r.max_inflight > 0 && r.inflight >= r.max_inflight;
}

int64_t FrontendLedger::dispatched(int e) const {
  return row(e).dispatched;
}

void FrontendLedger::Account(int e, EngineView& v) const {
  const Row& r = row(e);
  v.inflight = r.inflight;
  v.reserved_prefill = r.reserved_prefill;
  v.reserved_kv_tokens = r.reserved_kv;
  v.picks_since_snapshot = r.picks_since_snapshot;
}

void FrontendLedger::FillView(int e, EngineView& v) const {
  Account(e, v);
  if (AtLimit(e)) v.healthy = false;
}

}  // namespace gimbal
