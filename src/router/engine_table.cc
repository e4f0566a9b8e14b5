#include "router/engine_table.h"

#include <algorithm>
#include <cmath>

#include "router/prefix_cache.h"

namespace gimbal::router {
namespace {

std::vector<int64_t> Limits(const std::vector<EngineInfo>& infos) {
  std::vector<int64_t> out;
  for (const auto& i : infos) out.push_back(i.max_inflight);
  return out;
}

}  // namespace

EngineTable::EngineTable(std::vector<EngineInfo> engines, int failures_to_eject,
                         int successes_to_readmit, uint64_t seed, double push_stale_s,
                         double max_ejected_fraction)
    : infos_(std::move(engines)),
      failures_to_eject_(failures_to_eject),
      successes_to_readmit_(successes_to_readmit),
      max_ejected_fraction_(std::clamp(max_ejected_fraction, 0.0, 1.0)),
      push_stale_s_(push_stale_s),
      states_(infos_.size()),
      ledger_(Limits(infos_)),
      rng_(seed) {}

Result<Reservation> EngineTable::Pick(const DispatchPolicy& policy, DispatchRequest req,
                                      const std::string& model, const std::vector<int>& exclude,
                                      std::span<const uint64_t> prefix_blocks, bool match_events) {
  MutexLock lock(mu_);
  // Scratch kept across picks (each element is overwritten whole below): no allocation per pick.
  std::vector<EngineView>& views = pick_views_;
  views.resize(states_.size());
  bool any_healthy = false;
  bool any_open = false;
  for (size_t i = 0; i < states_.size(); ++i) {
    const State& s = states_[i];
    views[i] = s.view;  // the accounting is filled in below
    views[i].class_locality =
        req.class_hint >= 0 && static_cast<size_t>(req.class_hint) < s.class_locality.size()
            ? s.class_locality[static_cast<size_t>(req.class_hint)]
            : 0;
    views[i].snapshot_age = s.has_snapshot ? std::max(0.0, req.now - s.view.snapshot.taken_at) : 0;
    const bool eligible =
        s.view.healthy && infos_[i].model == model &&
        std::find(exclude.begin(), exclude.end(), static_cast<int>(i)) == exclude.end();
    any_healthy |= eligible;
    views[i].healthy = eligible;
    ledger_.FillView(static_cast<int>(i), views[i]);  // hides an engine at its limit
    any_open |= views[i].healthy;
  }
  if (!any_healthy) {
    return Status(ErrorCode::kUnavailable, "no healthy engine serves model '" + model + "'");
  }
  if (!any_open) {
    return Status(ErrorCode::kResourceExhausted,
                  "every engine serving '" + model + "' is at its in-flight limit");
  }
  if (prefix_cache_ != nullptr) prefix_cache_->Fill(prefix_blocks, views, match_events);
  req.sequence = sequence_;
  int e = policy.Pick(req, views, rng_);
  if (e < 0 || static_cast<size_t>(e) >= views.size() || !views[static_cast<size_t>(e)].healthy) {
    return Status(ErrorCode::kInternal,
                  "dispatch policy '" + policy.name() + "' chose an ineligible engine");
  }
  ++sequence_;
  const int64_t cached = views[static_cast<size_t>(e)].cached_prompt_tokens;
  return ledger_.Dispatch(e, req.prompt_tokens, req.max_output_tokens, cached);
}

void EngineTable::SettlePrefill(Reservation& r) {
  MutexLock lock(mu_);
  ledger_.FirstToken(r);
}

void EngineTable::Release(Reservation& r) {
  MutexLock lock(mu_);
  ledger_.Finish(r);
}

bool EngineTable::ApplySnapshot(int e, const EngineSnapshot& snap) {
  MutexLock lock(mu_);
  State& s = states_[static_cast<size_t>(e)];
  if (snap.taken_at - s.pushed_at < push_stale_s_) return false;
  InstallUnpushedLocked(e, snap, /*own_accounting=*/false);
  return true;
}

void EngineTable::InstallUnpushedLocked(int e, const EngineSnapshot& snap, bool own_accounting) {
  State& s = states_[static_cast<size_t>(e)];
  s.view.snapshot = snap;
  // What only a pushed state carries goes with it: a scrape knows no MoE pressure (1: neutral)
  // and no class locality, and the last push's would otherwise steer dispatch for good.
  s.view.moe_pressure = 1.0;
  s.class_locality.clear();
  ledger_.SnapshotTaken(e);
  s.has_snapshot = true;
  s.pushed = false;
  s.own_accounting = own_accounting;
}

bool EngineTable::UseOwnAccounting(int e, double now, double stale_after) {
  MutexLock lock(mu_);
  State& s = states_[static_cast<size_t>(e)];
  if (now - s.pushed_at < push_stale_s_) return false;
  if (s.has_snapshot && now - s.view.snapshot.taken_at < stale_after) return false;
  EngineView counts;
  ledger_.Account(e, counts);
  EngineSnapshot own;
  own.running = counts.inflight;
  own.kv_capacity_tokens = s.view.snapshot.kv_capacity_tokens;
  own.taken_at = now;
  InstallUnpushedLocked(e, own, /*own_accounting=*/true);
  return true;
}

void EngineTable::ApplyPushedSnapshot(int e, const EngineSnapshot& snap, double moe_pressure,
                                      std::vector<double> class_locality) {
  MutexLock lock(mu_);
  State& s = states_[static_cast<size_t>(e)];
  s.view.snapshot = snap;
  s.view.moe_pressure = moe_pressure;
  s.class_locality = std::move(class_locality);
  ledger_.SnapshotTaken(e);
  s.has_snapshot = true;
  s.pushed = true;
  s.own_accounting = false;
  s.pushed_at = snap.taken_at;
}

std::vector<double> EngineTable::class_locality(int e) const {
  MutexLock lock(mu_);
  return states_[static_cast<size_t>(e)].class_locality;
}

bool EngineTable::PushFresh(int e, double now) const {
  MutexLock lock(mu_);
  return now - states_[static_cast<size_t>(e)].pushed_at < push_stale_s_;
}

void EngineTable::ReportAnswered(int e) {
  MutexLock lock(mu_);
  states_[static_cast<size_t>(e)].request_failures = 0;
}

FailedRequest EngineTable::ReportFailedRequest(int e) {
  MutexLock lock(mu_);
  State& s = states_[static_cast<size_t>(e)];
  ++s.request_failures;
  if (!s.view.healthy || s.request_failures < failures_to_eject_) return FailedRequest::kCounted;
  // Engines serving the same model that are out, whatever took them out: failed requests may take
  // out only what leaves at least n - cap of them in. (Counting only their own ejections, a client
  // could finish off a model whose other engines were down on their probes.)
  size_t same = 0, out = 0;
  for (size_t i = 0; i < states_.size(); ++i) {
    if (infos_[i].model != infos_[static_cast<size_t>(e)].model) continue;
    ++same;
    out += !states_[i].view.healthy;
  }
  if (out >= static_cast<size_t>(std::floor(static_cast<double>(same) * max_ejected_fraction_))) {
    return s.request_failures == failures_to_eject_ ? FailedRequest::kKeptAtCap
                                                    : FailedRequest::kCounted;
  }
  s.view.healthy = false;
  s.out_on_requests = true;
  s.successes = 0;
  ++s.ejections;
  return FailedRequest::kEjected;
}

bool EngineTable::ReportHealth(int e, bool ok) {
  MutexLock lock(mu_);
  State& s = states_[static_cast<size_t>(e)];
  if (ok) {
    s.failures = 0;
    ++s.successes;
    if (!s.view.healthy && s.successes >= successes_to_readmit_) {
      s.view.healthy = true;
      s.out_on_requests = false;
      s.request_failures = 0;  // readmitted: its requests start afresh
      return true;
    }
    return false;
  }
  s.successes = 0;
  ++s.failures;
  // Out on failed requests, and now on its probes too: the probes' account, not a client's.
  if (s.failures >= failures_to_eject_) s.out_on_requests = false;
  if (s.view.healthy && s.failures >= failures_to_eject_) {
    s.view.healthy = false;
    ++s.ejections;
    return true;
  }
  return false;
}

bool EngineTable::healthy(int e) const {
  MutexLock lock(mu_);
  return states_[static_cast<size_t>(e)].view.healthy;
}

bool EngineTable::AnyHealthy() const {
  MutexLock lock(mu_);
  return std::any_of(states_.begin(), states_.end(), [](const State& s) { return s.view.healthy; });
}

EngineView EngineTable::ViewLocked(int e) const {
  EngineView v = states_[static_cast<size_t>(e)].view;
  ledger_.Account(e, v);
  return v;
}

EngineView EngineTable::view(int e) const {
  MutexLock lock(mu_);
  return ViewLocked(e);
}

std::vector<EngineRow> EngineTable::Rows(double now) const {
  MutexLock lock(mu_);
  std::vector<EngineRow> rows;
  for (size_t i = 0; i < states_.size(); ++i) {
    const State& s = states_[i];
    EngineRow row;
    row.info = infos_[i];
    row.view = ViewLocked(static_cast<int>(i));
    row.view.snapshot_age = s.has_snapshot ? std::max(0.0, now - s.view.snapshot.taken_at) : -1;
    row.has_snapshot = s.has_snapshot;
    row.pushed = s.pushed;
    row.own_accounting = s.own_accounting;
    row.consecutive_failures = std::max(s.failures, s.request_failures);
    row.ejected_on_requests = s.out_on_requests;
    row.dispatched_total = ledger_.dispatched(static_cast<int>(i));
    row.ejections = s.ejections;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace gimbal::router
