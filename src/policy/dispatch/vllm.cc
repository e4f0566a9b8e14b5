// vLLM's data-parallel load balancer in the API server: vllm (0.33), its alias vllm_kv, and the
// 2025 formulas vllm_2025 and vllm_kv_2025, kept so that results from before the move to 0.33
// stay reproducible.
//
// Source: vLLM 0.33.0, v1/engine/core_client.py (the DP load-balancing client's engine choice and
// its handling of the coordinator's published counts) and v1/engine/coordinator.py; see
// docs/baseline.md, row 3. Each API server (front end) scores every engine as
//   max(C·inflight, waiting + running) + 6·waiting·max(0, kv_usage − 0.5)   (the last term only
//                                                                            when waiting > 0)
// where C is the number of API servers, inflight is this server's own count of its unfinished
// requests on the engine, and waiting, running and kv_usage are the coordinator's last published
// counts; waiting also holds this server's local increments: after each pick it adds C to the
// chosen engine's waiting, until the next publication replaces the counts. The scan starts at the
// server's start index and wraps; the lowest score wins and a later engine wins only with a
// strictly lower score. The start index begins at (R·i)//C for server i of C over R engines and
// advances by 1 after each pick, so ties rotate.
//
// The policy is stateless: the caller hands in what a server remembers. EngineView's inflight and
// picks_since_snapshot are that server's own counts (so the local waiting is snapshot.waiting +
// C·picks_since_snapshot), DispatchRequest::frontends is C, ::frontend is i and ::sequence is the
// server's picks so far, so the scan starts at ((R·i)//C + sequence) mod R. A request naming its
// DP rank, which bypasses the balancer in vLLM, is not modelled.
//
// vllm_2025 is vLLM v1 as of 2025: 4·(waiting + picks_since_snapshot) + running, one front end,
// ties to the lowest index. vllm_kv_2025 is that era's KV-aware variant: max(inflight, waiting +
// running) + 6·waiting·max(0, kv_usage − 0.5) with waiting = snapshot.waiting +
// picks_since_snapshot, ties to the lowest index. Neither reads the front-end fields.
#include <algorithm>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct KvOptions {
  double kv_weight = 6;       // the 6 in 6·waiting·max(0, kv − kv_threshold)
  double kv_threshold = 0.5;  // KV usage above which waiting requests weigh more
};

Status ReadKvOptions(const Params& p, KvOptions* o) {
  o->kv_weight = p.GetDouble("kv_weight", o->kv_weight);
  o->kv_threshold = p.GetDouble("kv_threshold", o->kv_threshold);
  if (o->kv_weight < 0) return ParamRangeError("kv_weight", ">= 0", o->kv_weight);
  return Status();
}

// vLLM 0.33's balancer, as one API server of `req.frontends` sees it.
class VllmPolicy final : public DispatchPolicy {
 public:
  VllmPolicy(std::string name, KvOptions opts) : name_(std::move(name)), opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    const size_t n = engines.size();
    if (n == 0) return -1;
    const int clients = std::max(1, req.frontends);
    const int client = std::clamp(req.frontend, 0, clients - 1);
    const size_t first = n * static_cast<size_t>(client) / static_cast<size_t>(clients);
    const size_t start = (first + static_cast<size_t>(req.sequence % n)) % n;
    int best = -1;
    double best_score = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (start + k) % n;
      if (!engines[i].healthy) continue;
      const double s = Score(engines[i], clients);
      // A later engine only with a strictly lower score (a NaN score never displaces).
      if (best < 0 || s < best_score) {
        best = static_cast<int>(i);
        best_score = s;
      }
    }
    return best;
  }

  std::string name() const override { return name_; }
  int DefaultFrontends(int engines) const override { return std::max(1, engines); }

 private:
  double Score(const EngineView& v, int clients) const {
    const double c = clients;
    const double waiting =
        static_cast<double>(v.snapshot.waiting) + c * static_cast<double>(v.picks_since_snapshot);
    const double running = static_cast<double>(v.snapshot.running);
    double score = std::max(c * static_cast<double>(v.inflight), waiting + running);
    if (waiting > 0) {
      score += opts_.kv_weight * waiting * std::max(0.0, v.snapshot.kv_usage - opts_.kv_threshold);
    }
    return score;
  }

  std::string name_;
  KvOptions opts_;
};

// The 2025 formulas: one front end, ties to the lowest index.
class Vllm2025Policy final : public DispatchPolicy {
 public:
  // kv_variant: vllm_kv_2025; otherwise vllm_2025 with `waiting_weight`.
  Vllm2025Policy(bool kv_variant, double waiting_weight, KvOptions opts)
      : kv_variant_(kv_variant), waiting_weight_(waiting_weight), opts_(opts) {}

  int Pick(const DispatchRequest& /*req*/, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    std::vector<double> scores(engines.size(), 0.0);
    for (int i : healthy) scores[static_cast<size_t>(i)] = Score(engines[static_cast<size_t>(i)]);
    return PickMinLowestIndex(healthy, scores);
  }

  std::string name() const override { return kv_variant_ ? "vllm_kv_2025" : "vllm_2025"; }

 private:
  double Score(const EngineView& v) const {
    const double waiting =
        static_cast<double>(v.snapshot.waiting) + static_cast<double>(v.picks_since_snapshot);
    const double running = static_cast<double>(v.snapshot.running);
    if (!kv_variant_) return waiting_weight_ * waiting + running;
    const double load = std::max(static_cast<double>(v.inflight), waiting + running);
    return load +
           opts_.kv_weight * waiting * std::max(0.0, v.snapshot.kv_usage - opts_.kv_threshold);
  }

  bool kv_variant_;
  double waiting_weight_;
  KvOptions opts_;
};

FactoryResult NewVllm033(const std::string& name, const Params& p) {
  KvOptions o;
  if (Status s = ReadKvOptions(p, &o); !s.ok()) return s;
  return std::unique_ptr<DispatchPolicy>(std::make_unique<VllmPolicy>(name, o));
}

}  // namespace

FactoryResult NewVllm(const Params& p, const DispatchDeps& /*deps*/) {
  return NewVllm033("vllm", p);
}
FactoryResult NewVllmKv(const Params& p, const DispatchDeps& /*deps*/) {
  return NewVllm033("vllm_kv", p);
}
FactoryResult NewVllm2025(const Params& p, const DispatchDeps& /*deps*/) {
  double waiting_weight = p.GetDouble("waiting_weight", 4);
  if (waiting_weight < 0) return ParamRangeError("waiting_weight", ">= 0", waiting_weight);
  return std::unique_ptr<DispatchPolicy>(
      std::make_unique<Vllm2025Policy>(false, waiting_weight, KvOptions{}));
}
FactoryResult NewVllmKv2025(const Params& p, const DispatchDeps& /*deps*/) {
  KvOptions o;
  if (Status s = ReadKvOptions(p, &o); !s.ok()) return s;
  return std::unique_ptr<DispatchPolicy>(std::make_unique<Vllm2025Policy>(true, 4, o));
}

}  // namespace gimbal::dispatch_internal
