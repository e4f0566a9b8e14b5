// sglang: SGLang router's cache-aware policy, load-balance switch.
//
// Source: SGLang router (sgl-router) documentation of the cache-aware policy. The router checks
// whether the system is imbalanced:
//   max_load − min_load > balance_abs_threshold (64)  AND  max_load > balance_rel_threshold (1.5)
//   × min_load,
// with load the router's own count of requests in flight per worker. When imbalanced it sends
// the request to the least-loaded worker (the first one on ties, as a minimum-by-key scan does).
// Otherwise it makes the cache-aware choice: the worker whose radix tree best matches the prompt,
// or the one with the most free cache when no match is good enough.
//
// Gimbal has no prefix tree, so the balanced-state choice is approximated: a request with an
// affinity key goes to the engine rendezvous-hashing picks for the key (a stand-in for "the
// worker that holds this prefix": the same key always lands on the same healthy engine); without
// a key, to the least-loaded engine (stand-in for "most free cache").
// load_signal: "inflight" (default, as SGLang's router) or "snapshot" (running + waiting).
#include <algorithm>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct SglangOptions {
  double balance_abs_threshold = 64;
  double balance_rel_threshold = 1.5;
  bool snapshot_load = false;
};

class SglangPolicy final : public DispatchPolicy {
 public:
  explicit SglangPolicy(SglangOptions opts) : opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    if (healthy.empty()) return -1;
    std::vector<double> load(engines.size(), 0.0);
    double lo = 0;
    double hi = 0;
    bool first = true;
    for (int i : healthy) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      const double l = opts_.snapshot_load
                           ? static_cast<double>(v.snapshot.running + v.snapshot.waiting)
                           : static_cast<double>(v.inflight);
      load[static_cast<size_t>(i)] = l;
      lo = first ? l : std::min(lo, l);
      hi = first ? l : std::max(hi, l);
      first = false;
    }
    const bool imbalanced =
        hi - lo > opts_.balance_abs_threshold && hi > opts_.balance_rel_threshold * lo;
    if (!imbalanced && req.affinity_key != 0) return RendezvousPick(req.affinity_key, healthy);
    return PickMinLowestIndex(healthy, load);
  }
  std::string name() const override { return "sglang"; }

 private:
  SglangOptions opts_;
};

}  // namespace

FactoryResult NewSglang(const Params& p, const DispatchDeps& /*deps*/) {
  SglangOptions o;
  o.balance_abs_threshold = p.GetDouble("balance_abs_threshold", o.balance_abs_threshold);
  o.balance_rel_threshold = p.GetDouble("balance_rel_threshold", o.balance_rel_threshold);
  const std::string signal = p.GetString("load_signal", "inflight");
  if (signal != "inflight" && signal != "snapshot") {
    return InvalidArgument("'load_signal' must be 'inflight' or 'snapshot', got '" + signal + "'");
  }
  o.snapshot_load = signal == "snapshot";
  if (o.balance_abs_threshold < 0) {
    return ParamRangeError("balance_abs_threshold", ">= 0", o.balance_abs_threshold);
  }
  if (o.balance_rel_threshold < 1) {
    return ParamRangeError("balance_rel_threshold", ">= 1", o.balance_rel_threshold);
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<SglangPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
