// Simulator: replays a workload through one policy stack on a simulated DP+EP cluster.
//
// A stack is C front ends (API servers; StackSpec::frontends, 0 = the dispatch policy's
// DefaultFrontends: one per DP rank for vllm/vllm_kv, else 1) sharing a dispatch policy and the
// engines' snapshots (every `snapshot_interval` seconds, or after every step when 0), plus the
// engines' queue policy. Each arrival goes to a front end drawn uniformly at random from a stream
// forked off the seed; it sees each engine through an EngineView: the shared snapshot and its own
// exact accounting of its own requests (the FrontendLedger, core/frontend_ledger.h, that the
// router's EngineTable keeps too), updated at dispatch, first token and finish, reserving what a
// router can know, a request's prompt plus its max_tokens (Request::max_tokens; its output length
// when 0), never its true output length. With `max_inflight` > 0 an engine with that many requests
// in flight from all front ends together is hidden from the dispatch policy; a request finding
// every engine hidden is refused (it counts as failed), as the router answers 429. The run is a
// pure function of (cluster spec, stack, requests, seed): events are ordered by (time, sequence)
// and every random draw comes from streams forked off the seed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/params.h"
#include "core/request.h"
#include "sim/cluster.h"
#include "sim/metrics.h"
#include "sim/rebalancer.h"

namespace gimbal::sim {

struct StackSpec {
  std::string name = "vllm";
  std::string dispatch = "vllm";
  Params dispatch_params;
  double snapshot_interval = 0.1;  // seconds; 0 = fresh after every step
  int64_t max_inflight = 0;        // per engine, as the router's max_inflight; 0 = no limit
  std::string queue = "fcfs";
  Params queue_params;
  std::string step = "vllm";  // per-step token budgets across ranks (policy/step)
  Params step_params;
  PlacementSpec placement;  // expert placement and rebalancing (default static)
  // This stack's engine settings, replacing the scenario's `engine` (vllm-best sweeps, the 2025
  // engine model); unset: the scenario's.
  std::optional<EngineConfig> engine;
  // Front ends (API servers) sharing the dispatch: each has its own in-flight view and scan start.
  // 0: the dispatch policy's own default (vLLM 0.33 starts one API server per DP rank).
  int frontends = 0;
  // What the front end knows of each engine's prefix cache when it dispatches
  // (EngineView::cached_prompt_tokens): kNone (nothing, as vLLM's balancer), kPrecise (the
  // engines' caches at that moment, as a router fed by KV-cache events sees them) or
  // kApproximate (each front end's own record of the prompts it sent where, core/prefix_index.h,
  // holding prefix_index_capacity hashes per engine; 0: as many as the engine's KV cache holds).
  enum class PrefixIndex { kNone, kPrecise, kApproximate };
  PrefixIndex prefix_index = PrefixIndex::kNone;
  int64_t prefix_index_capacity = 0;
  // Class hints: the fraction, in [0, 1], of requests whose user declares their traffic class
  // (DispatchRequest::class_hint = Request::traffic_class; the others get -1). Which requests
  // carry one is drawn per request from a stream forked off the seed. A hinted request sees each
  // engine's EngineView::class_locality (Cluster::ClassLocality under the placement of the
  // moment). 0 (the default): no request carries a hint and nothing of the run changes.
  double class_hints = 0;
};

struct SimOptions {
  uint64_t seed = 1;
  double max_time =
      0;  // simulated seconds after which unfinished requests count as failed; 0 = none
  Slo slo;
  bool keep_requests = false;  // keep per-request records in the result
  bool keep_steps = false;     // keep per-step records (with per-GPU expert load) in the result
};

// One priced step. The expert-load fields are token-expert pairs (expectations under the routing
// model) summed over MoE layers: `gpu_load[g]` is what GPU g's routed experts computed;
// `load_max` and `load_mean` are Σ_layers of the most loaded GPU's and of the mean GPU's pairs, so
// Σ load_max ÷ Σ load_mean over any set of steps is the summary's expert_load_max_over_mean for
// those steps.
struct StepRecord {
  double start = 0;
  StepCost cost;
  int64_t tokens = 0;
  int64_t sequences = 0;
  int64_t preemptions = 0;
  std::vector<double> gpu_load;  // size: GPUs (= DP ranks)
  double load_max = 0;
  double load_mean = 0;
};

struct RunResult {
  std::string stack;
  nlohmann::ordered_json summary;       // vllm bench keys + cluster figures (see ToJson)
  std::vector<RequestRecord> requests;  // when keep_requests
  std::vector<StepRecord> steps;        // when keep_steps
  int64_t num_steps = 0;
  double wall_seconds = 0;  // host time the run took
};

// Runs the stack; errors for unknown policies, bad parameters, a cluster that does not fit, or
// requests out of order, shorter than 1 token or with max_tokens (when set) below their output.
Result<RunResult> Simulate(const ClusterSpec& cluster, const StackSpec& stack,
                           const std::vector<Request>& requests, const SimOptions& options);

}  // namespace gimbal::sim
