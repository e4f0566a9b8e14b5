// EngineTable: what the router knows about each engine, and the dispatch decision over it.
//
// Per engine it joins the last scraped snapshot (with its age), health (ejected after
// `failures_to_eject` consecutive failed probes or consecutive failed requests, counted apart;
// readmitted after `successes_to_readmit` consecutive good probes; failed requests eject at most
// `max_ejected_fraction` of the engines, since a client may cause them) and the router's own exact
// accounting, kept in a FrontendLedger (core/ frontend_ledger.h, the same ledger the simulator
// keeps): requests in flight, prompt tokens dispatched whose first token has not arrived (reserved
// prefill), prompt + max_tokens of those in flight (reserved KV), and picks since the last applied
// snapshot. Pick() builds one EngineView per engine (for a request with a class hint, with the
// engine's pushed locality for that class), hides engines that are unhealthy, excluded or serving
// another model, lets the ledger hide those at their limit (inflight >= max_inflight), fills each
// view's cached prefix from the prefix cache (when one is set), asks the pure DispatchPolicy, and
// records the reservation (only the uncached part of the prompt counts as reserved prefill; the
// caller records the blocks in the prefix cache once the engine accepts the request) — all under
// one mutex, so concurrent picks see each other. Thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/engine_state.h"
#include "core/frontend_ledger.h"
#include "core/random.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "policy/dispatch/dispatch_policy.h"

namespace gimbal::router {

class PrefixCache;

struct EngineInfo {
  std::string name;
  std::string model;
  int64_t max_inflight = 256;  // <= 0: no limit
};

// What the router holds for one dispatched request until Release(): the ledger's ticket.
using Reservation = LedgerTicket;

struct EngineRow {
  EngineInfo info;
  EngineView view;
  bool has_snapshot = false;
  bool pushed = false;  // the snapshot came from the engine's pushed state
  // The snapshot is the router's own accounting: the engine's state could not be read for a while
  // (UseOwnAccounting).
  bool own_accounting = false;
  int consecutive_failures = 0;
  bool ejected_on_requests = false;  // out on failed requests (not on its probes)
  int64_t dispatched_total = 0;
  int64_t ejections = 0;
};

// What a failed request did to its engine (EngineTable::ReportFailedRequest).
enum class FailedRequest {
  kCounted,  // one more in its run of failed requests
  kEjected,  // the run reached failures_to_eject: the engine is out until good probes readmit it
  // The run reached failures_to_eject, but as many engines as failed requests may take out are
  // out already: the engine stays in (its next failure may eject it, once the cap allows).
  // Reported once per run.
  kKeptAtCap,
};

class EngineTable {
 public:
  // A scraped snapshot is ignored while the last pushed one is younger than `push_stale_s`.
  // Failed requests eject an engine only while fewer than floor(n x max_ejected_fraction) of the n
  // engines serving its model are out, for any reason (Envoy's max_ejection_percent): a client
  // that can make engines fail (a request that makes them answer 500) can then take out that
  // share of them, never all; probes still take out any that fail them.
  EngineTable(std::vector<EngineInfo> engines, int failures_to_eject, int successes_to_readmit,
              uint64_t seed, double push_stale_s = 3, double max_ejected_fraction = 0.5);

  size_t size() const { return infos_.size(); }
  const EngineInfo& info(int e) const { return infos_[static_cast<size_t>(e)]; }

  // The prefix cache Pick consults (it must outlive the table); null: none. Set before use.
  void set_prefix_cache(PrefixCache* cache) { prefix_cache_ = cache; }

  // Chooses an engine serving `model` outside `exclude` and reserves it. kUnavailable when no
  // such engine is healthy, kResourceExhausted when all healthy ones are saturated.
  // `prefix_blocks`: the prompt's KV blocks as the engines name them (PrefixCache::Blocks);
  // `match_events` false: only the prefix cache's approximate record can answer for them.
  Result<Reservation> Pick(const DispatchPolicy& policy, DispatchRequest req,
                           const std::string& model, const std::vector<int>& exclude,
                           std::span<const uint64_t> prefix_blocks = {}, bool match_events = true);
  PrefixCache* prefix_cache() const { return prefix_cache_; }
  // The first token arrived: the prompt is prefilled. Idempotent.
  void SettlePrefill(Reservation& r);
  // The request finished (any outcome). Idempotent; settles the prefill too.
  void Release(Reservation& r);

  // A fresh snapshot scraped from engine `e` (taken_at on the router's clock). Ignored (false)
  // while a pushed snapshot younger than push_stale_s is at hand: pushed state is fresher.
  bool ApplySnapshot(int e, const EngineSnapshot& s);
  // A snapshot the engine pushed (taken_at on the router's clock), with its GPU's MoE pressure and,
  // per traffic class, its node's share of that class's expert traffic (empty: not reported).
  void ApplyPushedSnapshot(int e, const EngineSnapshot& s, double moe_pressure,
                           std::vector<double> class_locality = {});
  // Engine e's last pushed class locality (empty when it reports none).
  std::vector<double> class_locality(int e) const;
  // True when engine `e`'s last pushed snapshot is younger than push_stale_s at `now`.
  bool PushFresh(int e, double now) const;
  // When engine e's state could not be read (its /metrics failed) and its snapshot is older than
  // `stale_after` s at `now`, or there is none: replaces the snapshot with the router's own
  // accounting, taken `now` (waiting 0, running = requests in flight there, KV usage and pending
  // prefill unknown, so a policy reads its reservations; the KV capacity is kept). Without it,
  // the picks counted since the last snapshot grew for good and the engine was shut out although
  // it served. True when it did (not while pushed state is fresh).
  bool UseOwnAccounting(int e, double now, double stale_after);
  // A health probe's result. Returns true when the engine's health changed (ejected or
  // readmitted). Only probes readmit an ejected engine.
  bool ReportHealth(int e, bool ok);
  // A request the engine failed (broken, a 5xx, a stream cut short). Failed probes and failed
  // requests are counted apart, each against failures_to_eject (as Envoy keeps active health
  // checks apart from outlier detection): an answered request does not clear failed probes (a
  // draining vLLM answers its requests while its /health says 503), nor does a good probe clear
  // failed requests. A run of failed requests ejects the engine only while fewer of its model's
  // engines than the cap (constructor) are out; otherwise the engine stays in (kKeptAtCap).
  FailedRequest ReportFailedRequest(int e);
  // A request the engine answered: its consecutive failed requests start again from 0.
  void ReportAnswered(int e);

  // Engine `e`'s view as held: its last snapshot (a default one before the first), MoE pressure
  // and accounting; snapshot_age is left 0 (see Rows).
  EngineView view(int e) const;
  bool healthy(int e) const;
  bool AnyHealthy() const;
  // One row per engine with its view as of `now`.
  std::vector<EngineRow> Rows(double now) const;

 private:
  struct State {
    EngineView view;  // snapshot, health and MoE pressure; the accounting lives in ledger_
    bool has_snapshot = false;
    bool pushed = false;
    bool own_accounting = false;
    double pushed_at = -1e300;     // taken_at of the last pushed snapshot
    int failures = 0;              // consecutive failed probes
    int request_failures = 0;      // consecutive failed requests
    int successes = 0;             // consecutive good probes
    bool out_on_requests = false;  // ejected by failed requests, not (yet) by probes
    int64_t ejections = 0;
    std::vector<double> class_locality;  // pushed, per traffic class
  };
  // states_[e].view with the ledger's accounting filled in.
  EngineView ViewLocked(int e) const GIMBAL_REQUIRES(mu_);
  // Makes `snap` (scraped, or the router's own accounting) engine e's snapshot, dropping what
  // only a push carries.
  void InstallUnpushedLocked(int e, const EngineSnapshot& snap, bool own_accounting)
      GIMBAL_REQUIRES(mu_);

  std::vector<EngineInfo> infos_;
  PrefixCache* prefix_cache_ = nullptr;
  int failures_to_eject_;
  int successes_to_readmit_;
  double max_ejected_fraction_;  // in [0, 1]
  double push_stale_s_;
  mutable Mutex mu_;
  std::vector<State> states_ GIMBAL_GUARDED_BY(mu_);
  FrontendLedger ledger_ GIMBAL_GUARDED_BY(mu_);
  Rng rng_ GIMBAL_GUARDED_BY(mu_);
  uint64_t sequence_ GIMBAL_GUARDED_BY(mu_) = 0;
  std::vector<EngineView> pick_views_ GIMBAL_GUARDED_BY(mu_);  // Pick's scratch
};

}  // namespace gimbal::router
