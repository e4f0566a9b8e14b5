// Simulator (simulator.h): one stack's run, event by event.
//
// Front ends. A stack runs C front ends (API servers; StackSpec::frontends, 0 = the dispatch
// policy's DefaultFrontends: one per DP rank for vLLM 0.33's `vllm`, one for every other policy).
// Each arrival goes to one front end drawn uniformly at random from its own stream forked off the
// seed, so the assignment is deterministic and does not disturb the policy's random stream. Each
// front end keeps its own FrontendLedger of its own requests (in flight, reserved prefill and KV,
// picks since the snapshot) and its own dispatch count, which it hands the policy as
// DispatchRequest::sequence together with frontends = C and its index; a policy that rotates its
// scan (vllm) keeps its rotation per front end that way. The engines' snapshots are shared: the
// coordinator publishes one set, and every front end's picks since the snapshot restart with it.
//
// In-flight limit. StackSpec::max_inflight stays a per-engine limit over all front ends, as the
// router applies it: a separate ledger counts every front end's requests, and an engine with
// max_inflight requests in flight from all of them together is hidden from whichever front end
// dispatches, and a request that finds every engine hidden is refused. (C routers that each
// enforced the limit alone would let C times as many in.) With one front end this is exactly the
// router's accounting (tests/frontend_parity_test.cc).
//
// Summary (Finish): the `vllm bench` keys (metrics.h), the stack's policies and `frontends`,
// `preemptions` (over engines), `prefix_cache_hit_rate` (Σ hits / Σ queries over engines, 0 when
// no queries), and per engine `dispatched` (by all front ends), busy and split times,
// `preemptions`, `prefix_cache_queries`, `prefix_cache_hits` and `peak_kv_usage`; then expert
// load, all-to-all fractions and the KV capacity.
#include "sim/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "core/frontend_ledger.h"
#include "core/prefix_index.h"
#include "policy/dispatch/dispatch_policy.h"
#include "policy/queue/queue_policy.h"
#include "policy/step/step_policy.h"
#include "sim/event_queue.h"

namespace gimbal::sim {
namespace {

enum EventKind { kArrival = 0, kStepStart = 1, kStepEnd = 2, kSnapshot = 3 };

// Front ends per stack at most: each keeps a ledger row per engine.
constexpr int kMaxFrontends = 1 << 16;

// What the front end reserves for a request: the max_tokens its client sent.
int64_t MaxTokens(const Request& r) {
  return r.max_tokens > 0 ? r.max_tokens : r.output_tokens;
}

class Run {
 public:
  // `frontends` >= 1 front ends share the dispatch.
  Run(Cluster& cluster, const DispatchPolicy& dispatch, const StackSpec& stack,
      const std::vector<Request>& requests, const SimOptions& options, int frontends)
      : cluster_(cluster),
        dispatch_(dispatch),
        stack_(stack),
        requests_(requests),
        options_(options),
        rng_(Rng(options.seed).Fork(0xd15)),
        frontend_rng_(Rng(options.seed).Fork(0xf0e)),
        ledger_(std::vector<int64_t>(static_cast<size_t>(cluster.ranks()), stack.max_inflight)),
        frontends_(static_cast<size_t>(frontends),
                   Frontend{FrontendLedger(static_cast<size_t>(cluster.ranks())), 0, std::nullopt}),
        tickets_(requests.size()),
        own_tickets_(requests.size()),
        frontend_of_(requests.size(), 0),
        hinted_(requests.size(), false),
        snapshots_(cluster.ranks()),
        records_(requests.size()),
        last_token_(requests.size(), 0.0) {
    if (stack.prefix_index == StackSpec::PrefixIndex::kApproximate) {
      // As many prefix hashes per engine as its KV cache holds blocks of that size, unless set.
      const int64_t capacity =
          stack.prefix_index_capacity > 0
              ? stack.prefix_index_capacity
              : std::max<int64_t>(
                    1, cluster.kv_capacity_tokens() / cluster.engine(0).prefix_hash_tokens());
      for (Frontend& f : frontends_) {
        f.prefixes.emplace(static_cast<size_t>(cluster.ranks()), static_cast<size_t>(capacity));
      }
    }
  }
  // Periodic placement (rebalancer.h); null for the static placement.
  void set_rebalancer(Rebalancer* r) { rebalancer_ = r; }

  RunResult Go() {
    for (size_t i = 0; i < requests_.size(); ++i) {
      const Request& r = requests_[i];
      records_[i].id = r.id;
      records_[i].arrival = r.arrival;
      records_[i].prompt_tokens = r.prompt_tokens;
      records_[i].traffic_class = r.traffic_class;
      events_.Push(r.arrival, kArrival, static_cast<int64_t>(i));
    }
    if (stack_.class_hints > 0) {
      // Which requests declare their class: a stream of its own, so nothing else moves.
      Rng hint_rng = Rng(options_.seed).Fork(0xc1a55);
      for (size_t i = 0; i < requests_.size(); ++i) {
        hinted_[i] = stack_.class_hints >= 1 || hint_rng.Uniform() < stack_.class_hints;
      }
    }
    TakeSnapshots(0);
    if (stack_.snapshot_interval > 0) events_.Push(stack_.snapshot_interval, kSnapshot);
    while (!events_.empty() && finished_ < static_cast<int64_t>(requests_.size())) {
      const Event e = events_.Pop();
      if (options_.max_time > 0 && e.time > options_.max_time) break;
      switch (e.kind) {
        case kArrival:
          OnArrival(static_cast<size_t>(e.arg));
          break;
        case kStepStart:
          OnStepStart();
          break;
        case kStepEnd:
          OnStepEnd();
          break;
        case kSnapshot:
          TakeSnapshots(e.time);
          // Past about 1e15 s adding the interval leaves the time as it is: a snapshot pushed
          // again at the same time would repeat for ever, while steps still make progress.
          if (finished_ < static_cast<int64_t>(requests_.size()) &&
              e.time + stack_.snapshot_interval > e.time) {
            events_.Push(e.time + stack_.snapshot_interval, kSnapshot);
          }
          break;
        default:
          GIMBAL_CHECK(false, "unknown event kind");
      }
    }
    return Finish();
  }

 private:
  double now() const { return events_.now(); }

  // Applies the popularity drift epochs due by now (ClusterSpec::drift).
  void DriftPopularity() {
    const PopularityDrift& d = cluster_.spec().drift;
    if (!d.enabled()) return;
    while (now() >= (static_cast<double>(cluster_.popularity().epoch()) + 1) * d.period_s) {
      cluster_.DriftPopularity();
    }
  }

  void TakeSnapshots(double t) {
    for (int r = 0; r < cluster_.ranks(); ++r) {
      snapshots_[r] = cluster_.engine(r).Snapshot(t);
      ledger_.SnapshotTaken(r);
      for (Frontend& f : frontends_) f.ledger.SnapshotTaken(r);
    }
  }

  void OnArrival(size_t i) {
    const Request& req = requests_[i];
    const size_t f = frontends_.size() > 1 ? frontend_rng_.UniformInt(frontends_.size()) : 0;
    Frontend& fe = frontends_[f];
    std::vector<EngineView> views(cluster_.ranks());
    // A precise index looks the prompt's block hashes up in every engine: build them once.
    const std::vector<uint64_t> shared_blocks =
        stack_.prefix_index == StackSpec::PrefixIndex::kPrecise
            ? cluster_.engine(0).SharedPrefixBlockHashes(req)
            : std::vector<uint64_t>{};
    const int classes = static_cast<int>(cluster_.spec().classes.size());
    const int hint = hinted_[i] ? std::clamp<int>(req.traffic_class, 0, classes - 1) : -1;
    bool any_open = false;
    for (int r = 0; r < cluster_.ranks(); ++r) {
      EngineView& v = views[r];
      v.snapshot = snapshots_[r];
      v.snapshot_age = now() - snapshots_[r].taken_at;
      v.moe_pressure = cluster_.moe_pressure()[r];
      fe.ledger.Account(r, v);  // this front end's own accounting
      if (stack_.prefix_index == StackSpec::PrefixIndex::kPrecise) {
        v.cached_prompt_tokens = cluster_.engine(r).CachedPrefixTokens(shared_blocks);
      } else if (fe.prefixes) {
        v.cached_prompt_tokens = ApproximateCachedTokens(*fe.prefixes, r, req);
      }
      if (hint >= 0) v.class_locality = cluster_.ClassLocality(r, hint);
      if (ledger_.AtLimit(r)) v.healthy = false;  // stack.max_inflight over all front ends
      any_open |= v.healthy;
    }
    if (!any_open) {
      // Every engine is at its in-flight limit: refused, as the router answers 429.
      finished_++;
      return;
    }
    DispatchRequest dr;
    dr.id = req.id;
    dr.now = now();
    dr.prompt_tokens = req.prompt_tokens;
    dr.max_output_tokens = MaxTokens(req);
    dr.affinity_key = req.affinity_key;
    dr.sequence = fe.sequence++;
    dr.frontends = static_cast<int>(frontends_.size());
    dr.frontend = static_cast<int>(f);
    dr.class_hint = hint;
    const int e = dispatch_.Pick(dr, views, rng_);
    GIMBAL_CHECK(e >= 0 && e < cluster_.ranks() && views[e].healthy,
                 "dispatch policy returned no eligible engine");
    records_[i].engine = e;
    frontend_of_[i] = static_cast<int>(f);
    const int64_t cached = views[e].cached_prompt_tokens;
    tickets_[i] = ledger_.Dispatch(e, req.prompt_tokens, dr.max_output_tokens, cached);
    own_tickets_[i] = fe.ledger.Dispatch(e, req.prompt_tokens, dr.max_output_tokens, cached);
    if (req.output_tokens > cluster_.kv_capacity_tokens() - req.prompt_tokens) {  // no overflow
      // Longer than the whole KV cache of a rank: the engine rejects it at once, as vLLM rejects
      // over-long requests, and the front end releases what it reserved.
      Settle(i, /*finished=*/true);
      finished_++;
      return;
    }
    // The front end remembers the prompt as sent there (a rejected one never runs, so it is not).
    if (fe.prefixes) fe.prefixes->Record(e, req.prefix_hashes);
    Request copy = req;
    copy.id = static_cast<RequestId>(i);  // engines key by index into the workload
    cluster_.engine(e).Add(copy, now());
    if (!stepping_) {
      stepping_ = true;
      events_.Push(now(), kStepStart);
    }
  }

  void OnStepStart() {
    plans_ = cluster_.Plan();
    bool any = false;
    for (const auto& p : plans_) any = any || !p.empty();
    if (!any) {
      stepping_ = false;  // idle until the next arrival (nothing runnable can appear otherwise)
      return;
    }
    DriftPopularity();
    StepCost cost = cluster_.Cost(plans_);
    if (rebalancer_ != nullptr) cost.duration += rebalancer_->AfterStep(cluster_, cost, now());
    num_steps_++;
    if (options_.keep_steps) {
      StepRecord s;
      s.start = now();
      s.cost = cost;
      for (const auto& p : plans_) {
        s.tokens += p.batch.tokens;
        s.sequences += p.batch.sequences;
        s.preemptions += static_cast<int64_t>(p.preempted.size());
      }
      s.gpu_load = cluster_.last_gpu_load();
      // The cluster accumulates per-layer max and mean loads over the run; this step's share is
      // the difference to the previous step's totals.
      double sum_max = 0, sum_mean = 0;
      for (double v : cluster_.layer_max_load()) sum_max += v;
      for (double v : cluster_.layer_mean_load()) sum_mean += v;
      s.load_max = std::max(0.0, sum_max - load_max_total_);
      s.load_mean = std::max(0.0, sum_mean - load_mean_total_);
      load_max_total_ = sum_max;
      load_mean_total_ = sum_mean;
      steps_.push_back(std::move(s));
    }
    events_.Push(now() + cost.duration, kStepEnd);
  }

  void OnStepEnd() {
    const auto events = cluster_.Complete(plans_);
    for (size_t r = 0; r < events.size(); ++r) {
      for (const TokenEvent& t : events[r]) {
        const auto i = static_cast<size_t>(t.id);
        RequestRecord& rec = records_[i];
        if (t.generated == 1 && rec.first_token < 0) {
          rec.first_token = now();
          Settle(i, /*finished=*/false);
        } else {
          itl_.Add(now() - last_token_[i]);
        }
        last_token_[i] = now();
        if (t.finished) {
          rec.finish = now();
          rec.output_tokens = t.generated;
          rec.preemptions = t.preemptions;
          Settle(i, /*finished=*/true);
          finished_++;
        }
      }
    }
    if (stack_.snapshot_interval <= 0) TakeSnapshots(now());
    events_.Push(now(), kStepStart);
  }

  // Request i's first token (finished = false) or end, in the shared ledger and its front end's.
  void Settle(size_t i, bool finished) {
    FrontendLedger& own = frontends_[static_cast<size_t>(frontend_of_[i])].ledger;
    if (finished) {
      ledger_.Finish(tickets_[i]);
      own.Finish(own_tickets_[i]);
    } else {
      ledger_.FirstToken(tickets_[i]);
      own.FirstToken(own_tickets_[i]);
    }
  }

  RunResult Finish() {
    RunResult out;
    out.stack = stack_.name;
    out.num_steps = num_steps_;
    nlohmann::ordered_json& s = out.summary;
    s["stack"] = stack_.name;
    s["dispatch"] = stack_.dispatch;
    s["queue"] = stack_.queue;
    s["step"] = stack_.step;
    s["frontends"] = frontends_.size();
    s["num_requests"] = requests_.size();
    Summarise(records_, itl_, options_.slo, s);
    s["simulated_seconds"] = now();
    s["steps"] = num_steps_;
    nlohmann::ordered_json engines = nlohmann::ordered_json::array();
    const auto& times = cluster_.rank_times();
    int64_t preemptions = 0, prefix_queries = 0, prefix_hits = 0;
    for (int r = 0; r < cluster_.ranks(); ++r) {
      const RankTimes& t = times[r];
      const EngineScheduler& engine = cluster_.engine(r);
      preemptions += engine.total_preemptions();
      prefix_queries += engine.prefix_cache_queries();
      prefix_hits += engine.prefix_cache_hits();
      engines.push_back({{"engine", r},
                         {"dispatched", ledger_.dispatched(r)},
                         {"busy_s", t.busy},
                         {"attn_dense_s", t.attn_dense},
                         {"experts_s", t.experts},
                         {"all_to_all_s", t.all_to_all},
                         {"straggler_wait_s", t.straggler_wait},
                         {"dummy_steps", t.dummy_steps},
                         {"preemptions", engine.total_preemptions()},
                         {"prefix_cache_queries", engine.prefix_cache_queries()},
                         {"prefix_cache_hits", engine.prefix_cache_hits()},
                         {"peak_kv_usage", t.peak_kv_usage}});
    }
    s["preemptions"] = preemptions;
    s["prefix_cache_hit_rate"] =
        prefix_queries > 0 ? static_cast<double>(prefix_hits) / static_cast<double>(prefix_queries)
                           : 0.0;
    s["engines"] = engines;
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    double sum_max = 0, sum_mean = 0;
    for (size_t l = 0; l < cluster_.layer_max_load().size(); ++l) {
      const double mx = cluster_.layer_max_load()[l];
      const double mn = cluster_.layer_mean_load()[l];
      sum_max += mx;
      sum_mean += mn;
      layers.push_back(mn > 0 ? mx / mn : 1.0);
    }
    s["expert_load_max_over_mean"] = sum_mean > 0 ? sum_max / sum_mean : 1.0;
    s["expert_load_max_over_mean_per_layer"] = layers;
    const double tot = cluster_.tokens_total();
    s["a2a_cross_gpu_fraction"] =
        tot > 0 ? (cluster_.tokens_intra_node() + cluster_.tokens_inter_node()) / tot : 0.0;
    s["a2a_cross_node_fraction"] = tot > 0 ? cluster_.tokens_inter_node() / tot : 0.0;
    s["kv_capacity_tokens_per_rank"] = cluster_.kv_capacity_tokens();
    if (rebalancer_ != nullptr) rebalancer_->Report(s);
    if (cluster_.spec().drift.enabled())
      s["popularity_drift_epochs"] = cluster_.popularity().epoch();
    if (options_.keep_requests) out.requests = records_;
    out.steps = std::move(steps_);
    return out;
  }

  Cluster& cluster_;
  const DispatchPolicy& dispatch_;
  const StackSpec& stack_;
  const std::vector<Request>& requests_;
  const SimOptions& options_;
  Rebalancer* rebalancer_ = nullptr;
  // One front end (API server): its own accounting of its own requests and its dispatch count.
  // Prompt tokens each Request::prefix_hashes entry covers, as the engines count them.
  // What an approximate index believes engine r holds of `req`'s prompt: the shareable prefix its
  // leading hashes the front end sent there cover, as the engine would find it.
  int64_t ApproximateCachedTokens(const PrefixIndex& index, int r, const Request& req) const {
    const auto matched = static_cast<int64_t>(index.Match(r, req.prefix_hashes));
    return cluster_.engine(r).SharedPrefixTokens(req, matched);
  }

  struct Frontend {
    FrontendLedger ledger;  // no limit: the in-flight limit is per engine, in ledger_
    uint64_t sequence = 0;
    std::optional<PrefixIndex> prefixes;  // with an approximate prefix index: what it sent where
  };

  Rng rng_;           // the dispatch policy's
  Rng frontend_rng_;  // which front end an arrival reaches
  EventQueue events_;
  FrontendLedger ledger_;  // every front end's requests: the in-flight limit, dispatch counts
  std::vector<Frontend> frontends_;
  std::vector<LedgerTicket> tickets_;      // per request, by index into the workload: in ledger_
  std::vector<LedgerTicket> own_tickets_;  // ... in its front end's ledger
  std::vector<int> frontend_of_;           // ... which front end dispatched it
  std::vector<bool> hinted_;               // ... whether its class reaches dispatch as a hint
  std::vector<EngineSnapshot> snapshots_;
  std::vector<RequestRecord> records_;
  std::vector<double> last_token_;
  std::vector<StepPlan> plans_;
  std::vector<StepRecord> steps_;
  LogHistogram itl_;
  double load_max_total_ = 0, load_mean_total_ = 0;  // cluster totals after the last kept step
  bool stepping_ = false;
  int64_t finished_ = 0;
  int64_t num_steps_ = 0;
};

}  // namespace

Result<RunResult> Simulate(const ClusterSpec& scenario_cluster, const StackSpec& stack,
                           const std::vector<Request>& requests, const SimOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ClusterSpec cluster_spec = scenario_cluster;
  if (stack.engine) cluster_spec.engine = *stack.engine;
  auto queue = MakeQueuePolicy(stack.queue, stack.queue_params);
  if (!queue.ok()) return queue.status().WithContext(fmt::format("stack '{}'", stack.name));
  auto cluster = Cluster::Create(cluster_spec, queue->get());
  if (!cluster.ok()) return cluster.status();
  DispatchDeps deps;
  deps.cost_model = &(*cluster)->cost_model();
  deps.max_num_batched_tokens = cluster_spec.engine.max_num_batched_tokens;
  deps.kv_block_size = cluster_spec.engine.block_size;
  auto dispatch = MakeDispatchPolicy(stack.dispatch, stack.dispatch_params, deps);
  if (!dispatch.ok()) return dispatch.status().WithContext(fmt::format("stack '{}'", stack.name));
  StepDeps step_deps;
  step_deps.cost_model = &(*cluster)->cost_model();
  step_deps.ranks = cluster_spec.dp;
  step_deps.async_scheduling = cluster_spec.engine.async_scheduling;
  auto step = MakeStepPolicy(stack.step, stack.step_params, step_deps);
  if (!step.ok()) return step.status().WithContext(fmt::format("stack '{}'", stack.name));
  (*cluster)->SetStepPolicy(step->get());
  if (stack.max_inflight < 0) {
    return InvalidArgument(
        fmt::format("stack '{}': max_inflight must be >= 0 (0: no limit), got {}", stack.name,
                    stack.max_inflight));
  }
  if (!(stack.class_hints >= 0 && stack.class_hints <= 1)) {
    return InvalidArgument(fmt::format("stack '{}': class_hints must be in [0, 1], got {}",
                                       stack.name, stack.class_hints));
  }
  if (stack.frontends < 0 || stack.frontends > kMaxFrontends) {
    return InvalidArgument(fmt::format(
        "stack '{}': frontends must be in [0, {}] (0: the dispatch policy's default), got {}",
        stack.name, kMaxFrontends, stack.frontends));
  }
  const int frontends = stack.frontends > 0
                            ? stack.frontends
                            : std::max(1, (*dispatch)->DefaultFrontends(cluster_spec.dp));
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!(std::isfinite(requests[i].arrival) && requests[i].arrival >= 0)) {
      return InvalidArgument(fmt::format("request {}: arrival must be a finite time >= 0 s, got {}",
                                         i, requests[i].arrival));
    }
    if (i > 0 && requests[i].arrival < requests[i - 1].arrival) {
      return InvalidArgument(fmt::format("requests must be sorted by arrival (request {})", i));
    }
    if (requests[i].prompt_tokens < 1 || requests[i].output_tokens < 1) {
      return InvalidArgument(
          fmt::format("request {} needs prompt and output of at least 1 token", i));
    }
    if (requests[i].max_tokens != 0 && requests[i].max_tokens < requests[i].output_tokens) {
      return InvalidArgument(fmt::format(
          "request {}: max_tokens {} is below its output length {} (an engine stops at max_tokens)",
          i, requests[i].max_tokens, requests[i].output_tokens));
    }
  }
  std::unique_ptr<Rebalancer> rebalancer;
  if (stack.placement.dynamic()) {
    auto rb = Rebalancer::Create(stack.placement, **cluster);
    if (!rb.ok()) return rb.status().WithContext(fmt::format("stack '{}': placement", stack.name));
    rebalancer = std::move(*rb);
  }
  Run run(**cluster, **dispatch, stack, requests, options, frontends);
  run.set_rebalancer(rebalancer.get());
  RunResult result = run.Go();
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gimbal::sim
