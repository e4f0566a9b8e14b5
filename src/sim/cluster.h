// Cluster: a lockstep DP+EP cluster of engines sharing one expert placement.
//
// Rank r runs on GPU r (attention data-parallel, experts expert-parallel over all GPUs, nodes of
// `gpus_per_node`). Every step, each rank plans its batch with its own EngineScheduler; ranks with
// nothing to do run a dummy step. The GPU time of a step is (DESIGN §4): for each dense layer the
// slowest rank's attention + dense FFN; for each MoE layer the slowest rank's attention (+ shared
// experts), the dispatch all-to-all, the slowest GPU's routed-expert work and the combine
// all-to-all; then the slowest rank's LM head. Expert loads and all-to-all volumes are
// expectations under the routing model (expert_routing.h). The engine switches of vLLM 0.33
// (EngineConfig, docs/baseline.md §4, §5, §7) act here:
//
// - async_scheduling: the per-step CPU overhead runs beside the GPU step, so a step lasts
//   CostModel::StepTime(gpu, overhead, async) = max(gpu, overhead); off: gpu + overhead.
// - cuda_graph_padding: when every rank's token count (an idle rank's dummy batch counts 1) is at
//   most the largest CUDA-graph capture size (MaxCudaGraphCaptureSize(max_num_seqs)), every rank
//   runs max over ranks of CudaGraphPaddedTokens(count) tokens, as vLLM's DP ranks pad to the
//   largest padded batch. If any rank is over the largest size (it runs eagerly) nobody pads and
//   idle ranks run a one-token dummy. Padded tokens are priced through attention projections
//   (one context token each), dense FFN, shared experts and routed experts, and are dispatched
//   like the rank's real tokens: spread over traffic classes in proportion to the rank's own
//   tokens per class (a rank with none: the step's mix over all ranks; a step with none: class 0),
//   then routed by the routing model. They take no LM-head logits and do not enter class_tokens()
//   (the per-class statistics the rebalancer learns from); they do count in the expert loads
//   (last_gpu_load, layer loads, all-to-all volumes), since the GPUs do that work.
// - prefill_schedule_interval (> 1, with more than one rank): Plan keeps a step counter shared by
//   all ranks, 0 at the first step of a wave (the first Plan after one in which every rank was
//   idle) and +1 per step after; a step with counter % interval != 0 is throttled, and each rank
//   then schedules with defer_prefills unless its engine reports prefill_capacity_bound() (vLLM's
//   DPEngineCoreProc cadence and guard; the deferral itself is EngineScheduler's). A single rank
//   (no DP) is not throttled here.
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
  double busy = 0;            // own work: attention, dense, experts, head, exposed CPU overhead
  double attn_dense = 0;      // attention, dense FFN, shared experts, head
  double experts = 0;         // routed experts on this rank's GPU
  double all_to_all = 0;      // dispatch + combine
  double straggler_wait = 0;  // step time not spent on own work or all-to-all
  int64_t steps = 0;
  int64_t dummy_steps = 0;
  double peak_kv_usage = 0;
};

// duration = attn_dense + experts + all_to_all + overhead.
struct StepCost {
  double duration = 0;
  double attn_dense = 0;  // slowest-rank attention/dense part, summed over layers
  double experts = 0;     // slowest-GPU expert part, summed over layers
  double all_to_all = 0;
  double overhead = 0;        // CPU overhead the step waits for: all of it, or under async
                              // scheduling only what exceeds the GPU time
  double cpu_overhead = 0;    // the CPU overhead of the step, hidden or not
  int64_t padded_tokens = 0;  // tokens every rank ran under CUDA-graph padding; 0 when unpadded
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
  // With prefill_schedule_interval > 1, throttled steps defer prefills (see the file comment).
  // All plans are empty only when nothing can run until new input arrives: an empty first pass
  // that released requests finished in the last step (async scheduling) is planned again.
  std::vector<StepPlan> Plan();
  // The shared step counter of the last Plan (0 at a wave's first step) and whether that step was
  // throttled by prefill_schedule_interval.
  int64_t step_counter() const { return step_counter_; }
  bool last_plan_throttled() const { return last_throttled_; }
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
  // Share of rank r's class-c expert traffic its node serves under the current placement and
  // popularity (RoutingTables::NodeLocality): the signal class-aware dispatch reads.
  double ClassLocality(int r, int c) const { return tables_->NodeLocality(r, c); }
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
  // Prices every MoE layer for tokens per (rank, class) `route` and per class `route_total`:
  // fills gpu_pairs_, expert_time_, moe_layers_ (and the scratch buffers on the way).
  void PriceMoe(const std::vector<double>& route, const std::vector<double>& route_total);
  // GPU g's routed-expert time in MoE layer l for `pairs` token-expert pairs, its slots' tokens
  // read from slot_tokens_.
  double ExpertTimeOf(int l, int g, double pairs);
  // One Schedule() per rank with the step policy's budgets and the current throttle.
  std::vector<StepPlan> ScheduleRanks();
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
  int64_t graph_max_tokens_ = 0;  // largest CUDA-graph capture size; 0: padding off
  // prefill_schedule_interval: the shared step counter and whether the last Plan was idle.
  int64_t step_counter_ = 0;
  bool wave_idle_ = true;
  bool last_throttled_ = false;

  std::vector<RankTimes> rank_times_;
  std::vector<double> moe_pressure_, gpu_load_ema_;
  std::vector<double> last_gpu_load_;  // see last_gpu_load()
  std::vector<double> layer_max_, layer_mean_;
  double tok_intra_ = 0, tok_inter_ = 0, tok_total_ = 0;
  // Scratch buffers reused across steps.
  std::vector<double> class_tokens_;  // [rank * classes + class]
  std::vector<double> route_tokens_;  // class_tokens_ plus padded tokens: what the experts see
  std::vector<double> route_total_;   // per class, summed over ranks
  std::vector<double> attn_, dense_, shared_, head_, own_expert_;  // per rank
  std::vector<int> node_of_;
  // Per MoE layer and GPU ([layer * ranks + gpu]) or slot ([layer * slots + slot]) or node.
  std::vector<double> node_sent_, gpu_pairs_, sent_, out_intra_, out_inter_, in_intra_, in_inter_,
      layer_sent_;
  std::vector<double> class_total_;
  // The MoE layers' pricing for the last (route, route totals) priced (PriceMoe), valid until the
  // routing tables change.
  struct MoeLayer {
    double sent_total = 0, sent_intra = 0, sent_inter = 0;  // tokens dispatched
    double max_expert = 0;                                  // slowest GPU's expert time
    double sum_pairs = 0, max_pairs = 0;                    // token-expert pairs over GPUs
    double comm = 0;  // dispatch + combine time before overlap with compute
  };
  std::vector<MoeLayer> moe_layers_;
  std::vector<double> expert_time_;  // [layer * ranks + gpu]
  std::vector<double> moe_key_, moe_last_key_;
  bool moe_valid_ = false;
  std::vector<double> slot_tokens_;     // [layer * slots + slot]: the step's tokens per slot
  std::vector<double> active_scratch_;  // one GPU's slots (ExpertTimeOf)
};

}  // namespace gimbal::sim
