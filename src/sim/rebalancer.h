// Expert placement inside the simulator: source x expert statistics gathered from the simulated
// steps, periodic rebalancing by a placement policy, and the cost of migrating expert weights.
//
// Statistics. The cluster knows, per step, the tokens T[r][c] each source rank r computed per
// traffic class c; under the routing model the expected token-expert assignments of layer l are
//   A[l][r][x] = Σ_c T[r][c] · top_k · p_c[l][x]
// (p_c from ExpertPopularity). SourceStatsAccumulator keeps only T per step (tagged with the
// popularity's drift epoch) and materialises A when a rebalance runs, so recording costs
// ranks x classes additions per step. It keeps the last `window_steps` steps, or an exponentially
// decayed sum (A <- decay·A + step), exactly as RoutingStats would on the full matrices.
//
// Rebalancing. A counter rises by one per priced step (dummy steps included: every lockstep step
// is priced); when it reaches `interval_steps` the stack's policy plans a new placement from A and
// the current placement, and the counter restarts at 0 (vLLM's EPLB: every 3000 steps over a
// 1000-step window). Timing of `eplb` follows vLLM 0.33's EplbState (docs/baseline.md §6): the
// counter starts at interval − interval/4, so the first rebalance comes after interval/4 steps
// (750 of 3000); and a rebalance due while an overlapped copy is still in flight waits: the
// counter is not reset and every following step tries again, so the rebalance runs at the step
// the copy lands. Gimbal's own planners keep their timing: the counter starts at 0 (first
// rebalance after a whole interval, once a full window of statistics exists), and a rebalance due
// during a copy is skipped for that interval (`rebalances_skipped`). `first_rebalance_steps` (per
// stack) moves the first rebalance of any policy, so that planners compared in one scenario can
// start alike. EPLB's plan has no source routes, so tokens split evenly over replicas (vLLM);
// Gimbal's carries source_routes, so each source's tokens go to its nearest replica first.
// Planning is host time and is not charged to the simulated clock.
//
// Migration. Every replica of expert x that a GPU g holds in the new placement beyond those it held
// (Placement CountMoves semantics) is one copy of ExpertParams · weight_bytes bytes, sent from a
// GPU that held x: one on g's node if any (NVLink), else one on another node (NIC); among
// candidates the one that has sent least so far, lowest index on ties. A copy within g (it already
// held x) is an HBM copy and costs no link time. The copy time is the all-to-all time of the
// per-GPU maxima of bytes sent or received over each link: CostModel::AllToAllTime(max NVLink
// bytes, max NIC bytes) (link efficiency and latency included). `blocking`: the new placement
// applies at once and the copy time is added to the step that triggered the rebalance.
// `overlapped`: the copy streams in the background on a share s (`migration_link_share`) of the
// links, so it lasts copy_time / s of simulated time; during that time each step's all-to-all runs
// on the remaining 1 - s and takes all_to_all · s / (1 - s) longer (the extra is charged to the
// step); the old placement serves until the copy ends, then the new one applies. The default is
// `overlapped` for `eplb` (vLLM's EPLB runs asynchronously by default) and `blocking` otherwise.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/params.h"
#include "core/status.h"
#include "core/yaml_reader.h"
#include "policy/placement/placement_policy.h"
#include "policy/placement/routing_stats.h"
#include "sim/cluster.h"

namespace gimbal::sim {

enum class MigrationMode { kBlocking, kOverlapped };

// Per stack. `static` (the default) keeps the contiguous placement and never rebalances.
struct PlacementSpec {
  std::string policy = "static";
  Params params;  // the policy's own parameters (placement_policy.h)
  int64_t interval_steps = 3000;
  RoutingStatsOptions stats;               // kWindow with window_steps (1000), or kDecay with decay
  std::optional<MigrationMode> migration;  // unset: the policy's default, migration_mode()
  double migration_link_share = 0.25;      // overlapped: share of link bandwidth the copy uses
  double alpha = -1;      // planner cost of a hop within a node; < 0: NIC / NVLink bandwidth ratio
  double beta = 1;        // planner cost of a hop across nodes
  int expert_groups = 1;  // for EPLB's hierarchical mode
  // Steps before the first rebalance; 0: the policy's default (interval/4 for `eplb`, as vLLM;
  // a whole interval for the others). A scenario that compares planners can give every stack
  // the same start.
  int64_t first_rebalance_steps = 0;

  bool dynamic() const { return policy != "static"; }
  // vLLM's EPLB: quarter-interval first rebalance, waits out a copy in flight (see above).
  bool vllm_timing() const { return policy == "eplb"; }
  int64_t first_rebalance() const {
    if (first_rebalance_steps > 0) return first_rebalance_steps;
    return vllm_timing() ? interval_steps / 4 : interval_steps;
  }
  // `migration` if set, else overlapped for `eplb` (vLLM's default use_async) and blocking for
  // the other policies.
  MigrationMode migration_mode() const {
    if (migration) return *migration;
    return vllm_timing() ? MigrationMode::kOverlapped : MigrationMode::kBlocking;
  }
};

// Reads `key` of a stack: a policy name or a map {policy, interval_steps, window_steps | decay,
// migration: blocking|overlapped, migration_link_share, alpha, beta, expert_groups,
// first_rebalance_steps, <policy params>}. Errors go to the reader and name the key.
void ReadPlacementSpec(const YamlReader& stack, const std::string& key, PlacementSpec* out);
// Checks the policy name and its parameters against the registry.
Status CheckPlacementSpec(const PlacementSpec& spec);

class SourceStatsAccumulator {
 public:
  SourceStatsAccumulator(int sources, int classes, int layers, int experts, int top_k,
                         RoutingStatsOptions options);
  // Records one step: class_tokens[source * classes + class], under popularity `pop`.
  void RecordStep(std::span<const double> class_tokens, const ExpertPopularity& pop);
  // A[l][s][x] over the window (or the decayed sum).
  SourceExpertCounts Materialise() const;
  int64_t steps_recorded() const { return steps_; }

 private:
  struct Epoch {
    std::vector<double> rows;    // the popularity rows of the epoch
    std::vector<double> tokens;  // kDecay: decayed T of the epoch's steps
  };
  Epoch& EpochFor(const ExpertPopularity& pop);

  int sources_, classes_, layers_, experts_, top_k_;
  RoutingStatsOptions options_;
  std::map<int64_t, Epoch> epochs_;
  std::vector<double> ring_;         // kWindow: window_steps x (sources * classes)
  std::vector<int64_t> ring_epoch_;  // epoch of each ring entry (-1: empty)
  size_t ring_next_ = 0;
  int64_t steps_ = 0;
};

struct MigrationCost {
  int64_t experts_moved = 0;  // replica copies
  double bytes = 0;
  double nvlink_bytes_max = 0, nic_bytes_max = 0;  // per GPU, the larger of sent and received
  double seconds = 0;                              // copy time at full link bandwidth
};

// The copies needed to go from `from` to `to` (same shape) on `cluster`'s GPUs and their time.
MigrationCost ComputeMigration(const Placement& from, const Placement& to,
                               const ClusterSpec& cluster, const CostModel& cost);

// The planner's view of the cluster.
PlacementTopology SimTopology(const ClusterSpec& cluster, const PlacementSpec& spec);

struct RebalanceRecord {
  int64_t step = 0;  // priced steps so far when it was planned
  double time = 0;   // simulated seconds
  int64_t experts_migrated = 0;
  double bytes = 0;
  double copy_seconds = 0;     // at full link bandwidth
  double charged_seconds = 0;  // added to step times (blocking: = copy_seconds)
  // Over the steps since the previous rebalance (or the start): the all-to-all's cross-node
  // fraction (as the summary's a2a_cross_node_fraction) and, per traffic class, the share of its
  // tokens each node's ranks computed ([class][node]). Together with experts_migrated they show
  // whether dispatch and placement settle or chase each other.
  double cross_node_fraction = 0;
  std::vector<std::vector<double>> class_node_share;
};

class Rebalancer {
 public:
  // Errors for unknown policies or parameters.
  static Result<std::unique_ptr<Rebalancer>> Create(const PlacementSpec& spec,
                                                    const Cluster& cluster);

  // Called once per priced step, after Cluster::Cost, with the step's cost and start time. Records
  // the step's tokens, advances a migration in flight and rebalances when due. Returns seconds to
  // add to the step's duration (migration charged to it).
  double AfterStep(Cluster& cluster, const StepCost& cost, double now);

  const std::vector<RebalanceRecord>& history() const { return history_; }
  const SourceStatsAccumulator& stats() const { return stats_; }
  double charged_seconds() const { return charged_; }
  // Adds placement_policy, rebalances, experts_migrated, migration_bytes, migration_time_s, the
  // per-rebalance means and rebalance_history to a run summary (and, for vLLM timing,
  // rebalance_wait_steps: steps due rebalances waited for a copy in flight).
  void Report(nlohmann::ordered_json& summary) const;

 private:
  Rebalancer(const PlacementSpec& spec, const Cluster& cluster,
             std::unique_ptr<PlacementPolicy> policy);
  void Rebalance(Cluster& cluster, double now, double* extra);
  // Adds the last priced step's tokens per (class, node) to class_node_tokens_.
  void RecordClassNodes(const Cluster& cluster);

  PlacementSpec spec_;
  std::unique_ptr<PlacementPolicy> policy_;
  PlacementTopology topology_;
  SourceStatsAccumulator stats_;
  int64_t steps_ = 0;
  int64_t counter_ = 0;     // steps towards the next rebalance
  int64_t wait_steps_ = 0;  // vLLM timing: steps a due rebalance waited for a copy in flight
  std::vector<RebalanceRecord> history_;
  double charged_ = 0;
  int64_t skipped_ = 0, failed_ = 0;
  std::string last_error_;
  // Since the last rebalance: tokens per (class, node) and the cluster's all-to-all counters then.
  std::vector<double> class_node_tokens_;
  double inter_at_last_ = 0, total_at_last_ = 0;
  // Overlapped migration in flight.
  bool pending_ = false;
  Placement pending_placement_;
  double pending_left_ = 0;  // simulated seconds of copying left
};

}  // namespace gimbal::sim
