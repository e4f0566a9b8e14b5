// Cluster: a lockstep DP+EP cluster of engines sharing one expert placement.
//
// Rank r runs on GPU r (attention data-parallel, experts expert-parallel over all GPUs, nodes of
// `gpus_per_node`). Every step, each rank plans its batch with its own EngineScheduler; ranks with
// nothing to do run a dummy step. The step time is (DESIGN §4): for each dense layer the slowest
// rank's attention + dense FFN; for each MoE layer the slowest rank's attention (+ shared
// experts), the dispatch all-to-all, the slowest GPU's routed-expert work and the combine
// all-to-all; then the slowest rank's LM head and the per-step CPU overhead. Expert loads and
// all-to-all volumes are expectations under the routing model (expert_routing.h).
//
// Cluster also keeps per-rank time breakdowns and per-layer expert-load balance for reporting.
#pragma once

#include <memory>
#include <vector>

#include "model/cost_model.h"
#include "policy/placement/placement.h"
#include "policy/step/step_policy.h"
#include "sim/engine_scheduler.h"
#include "sim/expert_routing.h"

namespace gimbal::sim {

struct ClusterSpec {
  ModelSpec model;
  HardwareSpec hardware;
  EngineConfig engine;
  int dp = 8;  // DP ranks = EP size = GPUs
  int redundant_slots_per_gpu = 0;
  std::vector<TrafficClassSpec> classes{{"default", 1.0, 1.0}};
  double class_overlap = 0.3;  // see ExpertPopularity
  uint64_t routing_seed = 7;   // expert popularity permutations
  PopularityDrift drift;       // off by default

  int nodes() const { return (dp + hardware.gpus_per_node - 1) / hardware.gpus_per_node; }
};

struct RankTimes {
  double busy = 0;            // own compute: attention, dense, experts, head, overhead
  double attn_dense = 0;      // attention, dense FFN, shared experts, head
  double experts = 0;         // routed experts on this rank's GPU
  double all_to_all = 0;      // dispatch + combine
  double straggler_wait = 0;  // step time not spent on own work or all-to-all
  int64_t steps = 0;
  int64_t dummy_steps = 0;
  double peak_kv_usage = 0;
};

struct StepCost {
  double duration = 0;
  double attn_dense = 0;  // slowest-rank attention/dense part, summed over layers
  double experts = 0;     // slowest-GPU expert part, summed over layers
  double all_to_all = 0;
  double overhead = 0;
};

class Cluster {
 public:
  // `queue` must outlive the cluster. Fails when the model does not fit on the GPUs.
  static Result<std::unique_ptr<Cluster>> Create(const ClusterSpec& spec, const QueuePolicy* queue);

  int ranks() const { return spec_.dp; }
  EngineScheduler& engine(int r) { return engines_[r]; }
  const EngineScheduler& engine(int r) const { return engines_[r]; }
  bool HasWork() const;

  // Plans one lockstep step on every rank, within the budgets of the step policy if one is set
  // (otherwise every rank gets its full max_num_batched_tokens).
  std::vector<StepPlan> Plan();
  // `policy` (may be null) must outlive the cluster.
  void SetStepPolicy(const StepPolicy* policy) { step_policy_ = policy; }
  // Prices a planned step and accumulates the breakdowns.
  StepCost Cost(const std::vector<StepPlan>& plans);
  // Applies the step; returns each rank's token events.
  std::vector<std::vector<TokenEvent>> Complete(const std::vector<StepPlan>& plans);

  // Installs a new placement and rebuilds the routing tables.
  Status SetPlacement(Placement p);
  const Placement& placement() const { return placement_; }
  const ExpertPopularity& popularity() const { return *popularity_; }
  // Moves expert popularity to its next drift epoch (spec().drift.fraction) and rebuilds the
  // routing tables.
  void DriftPopularity();
  // Tokens each rank computed per traffic class in the last priced step: [rank * classes + class].
  const std::vector<double>& class_tokens() const { return class_tokens_; }
  const CostModel& cost_model() const { return cost_; }
  const ClusterSpec& spec() const { return spec_; }

  // Expert load of each GPU relative to the mean (1 = average), smoothed over recent steps.
  const std::vector<double>& moe_pressure() const { return moe_pressure_; }
  // Routed-expert load of each GPU in the last priced step: token-expert pairs it computed, summed
  // over MoE layers (expectations under the routing model). Size ranks(); zeros before any step.
  const std::vector<double>& last_gpu_load() const { return last_gpu_load_; }
  const std::vector<RankTimes>& rank_times() const { return rank_times_; }
  // Per MoE layer: Σ over steps of the max and of the mean GPU expert load (token pairs).
  const std::vector<double>& layer_max_load() const { return layer_max_; }
  const std::vector<double>& layer_mean_load() const { return layer_mean_; }
  // Tokens sent between GPUs in the dispatch phase, summed: within a node, across nodes, and
  // all token-GPU deliveries (including same-GPU ones).
  double tokens_intra_node() const { return tok_intra_; }
  double tokens_inter_node() const { return tok_inter_; }
  double tokens_total() const { return tok_total_; }
  int64_t kv_capacity_tokens() const { return kv_capacity_tokens_; }

 private:
  Cluster(ClusterSpec spec, CostModel cost, const QueuePolicy* queue, int64_t kv_blocks);

  ClusterSpec spec_;
  CostModel cost_;
  std::vector<EngineScheduler> engines_;
  std::unique_ptr<ExpertPopularity> popularity_;
  Placement placement_;
  std::unique_ptr<RoutingTables> tables_;
  int64_t kv_capacity_tokens_ = 0;
  const StepPolicy* step_policy_ = nullptr;
  std::vector<RankWork> work_;
  std::vector<int64_t> budgets_;

  std::vector<RankTimes> rank_times_;
  std::vector<double> moe_pressure_, gpu_load_ema_;
  std::vector<double> last_gpu_load_;  // see last_gpu_load()
  std::vector<double> layer_max_, layer_mean_;
  double tok_intra_ = 0, tok_inter_ = 0, tok_total_ = 0;
  // Scratch buffers reused across steps.
  std::vector<double> class_tokens_;  // [rank * classes + class]
  std::vector<int> node_of_;
  std::vector<double> node_sent_;
  std::vector<double> class_total_, slot_tokens_, gpu_pairs_, sent_, out_intra_, out_inter_,
      in_intra_, in_inter_, gpu_expert_time_;
};

}  // namespace gimbal::sim
