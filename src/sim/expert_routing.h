// Expert routing model: how each traffic class's tokens spread over experts, and where they land.
//
// Each traffic class c has, in every MoE layer l, a popularity p_c[l][x] over logical experts: a
// Zipf(s_c) profile laid over experts by a permutation drawn per (class, layer), mixed with a
// profile shared by all classes (`overlap`), so classes have distinct but overlapping hot experts.
// A token picks top_k distinct experts; in expectation expert x receives top_k · p_c[l][x] of each
// class-c token (p is capped so no expert exceeds probability 1 per token).
//
// RoutingTables joins popularity with a Placement: for source rank r, class c, layer l and GPU g,
// share = expected fraction of r's class-c token-expert pairs served on g, and reach = expected
// fraction of r's class-c tokens that must be sent to g (at least one of their experts is there),
// the quantity all-to-all traffic is made of; and the node locality of (r, c), the share of r's
// class-c token-expert pairs served on r's own node, averaged over layers (what class-aware
// dispatch reads, EngineView::class_locality). Tables are rebuilt when the placement changes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "policy/placement/placement.h"

namespace gimbal::sim {

struct TrafficClassSpec {
  std::string name;
  double weight = 1;  // share of requests
  double zipf = 1.0;  // skew of its expert popularity
};

// Popularity drift (off unless both are positive): every `period_s` simulated seconds, in every
// (class, layer), `fraction` of the positions of the class's expert permutation are picked and the
// experts at them shuffled among themselves, so hot experts move. Deterministic from the routing
// seed and the epoch number.
struct PopularityDrift {
  double period_s = 0;
  double fraction = 0;
  bool enabled() const { return period_s > 0 && fraction > 0; }
};

class ExpertPopularity {
 public:
  ExpertPopularity(const std::vector<TrafficClassSpec>& classes, int moe_layers, int experts,
                   int top_k, double overlap, uint64_t seed);
  int classes() const { return classes_; }
  int layers() const { return layers_; }
  int experts() const { return experts_; }
  int top_k() const { return top_k_; }
  // p_c[l][·], summing to 1.
  std::span<const double> Row(int c, int l) const {
    return {p_.data() + (static_cast<size_t>(c) * layers_ + l) * experts_,
            static_cast<size_t>(experts_)};
  }
  // All rows, class-major then layer: classes * layers * experts.
  const std::vector<double>& rows() const { return p_; }

  // Moves to the next drift epoch: reshuffles `fraction` (in (0, 1]) of every class's per-layer
  // permutation (see PopularityDrift) and recomputes the rows. Epoch 0 is the initial popularity.
  void Drift(double fraction);
  int64_t epoch() const { return epoch_; }

 private:
  void FillRow(int c, int l);

  int classes_, layers_, experts_, top_k_;
  double overlap_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  std::vector<double> p_;
  std::vector<std::vector<double>> shared_, zipf_;  // per layer; per class
  std::vector<int> perm_;  // (class * layers + layer) * experts + rank -> expert
};

class RoutingTables {
 public:
  // `gpus_per_node` groups GPUs into nodes (0: all GPUs in one node).
  RoutingTables(const ExpertPopularity& pop, const Placement& placement, int sources,
                int gpus_per_node = 0);
  int gpus() const { return gpus_; }
  // share and reach for (source, class, layer), one entry per GPU.
  std::span<const double> Share(int r, int c, int l) const {
    return ShareRow(r, c).subspan(static_cast<size_t>(l) * gpus_, static_cast<size_t>(gpus_));
  }
  std::span<const double> Reach(int r, int c, int l) const {
    return ReachRow(r, c).subspan(static_cast<size_t>(l) * gpus_, static_cast<size_t>(gpus_));
  }
  // Expected fraction of r's class-c tokens that must reach each node (at least one of their
  // experts is there): DeepEP sends a token over the network once per destination node and
  // forwards it inside the node over NVLink.
  std::span<const double> ReachNode(int r, int c, int l) const {
    return ReachNodeRow(r, c).subspan(static_cast<size_t>(l) * nodes_, static_cast<size_t>(nodes_));
  }
  // The same tables for all layers of one (source, class) at once, layer-major: share and reach
  // [l * gpus() + g], reach per node [l * nodes() + n]. A step walks each active (source, class)
  // row from end to end. Sources whose tokens the placement routes alike (every source, when it
  // has no source routes) share one row, so the tables stay small at 64 GPUs.
  std::span<const double> ShareRow(int r, int c) const { return Row(share_, r, c, gpus_); }
  std::span<const double> ReachRow(int r, int c) const { return Row(reach_, r, c, gpus_); }
  std::span<const double> ReachNodeRow(int r, int c) const {
    return Row(reach_node_, r, c, nodes_);
  }
  int nodes() const { return nodes_; }
  int layers() const { return layers_; }
  // Share, in [0, 1], of source r's class-c token-expert pairs that GPUs on r's node serve
  // (source r runs on GPU r · gpus / sources), averaged over MoE layers.
  double NodeLocality(int r, int c) const {
    return node_locality_[static_cast<size_t>(r) * classes_ + c];
  }
  // Per-slot popularity for class c in layer l (token-expert pairs per class-c token, all sources
  // together), used to estimate how many expert replicas are active in a step.
  std::span<const double> SlotLoad(int c, int l) const {
    return SlotLoadRow(c).subspan(static_cast<size_t>(l) * slots_, static_cast<size_t>(slots_));
  }
  // SlotLoad of class c for all layers: [l * slots() + s].
  std::span<const double> SlotLoadRow(int c) const {
    const size_t n = static_cast<size_t>(layers_) * slots_;
    return {slot_load_.data() + static_cast<size_t>(c) * n, n};
  }
  int slots() const { return slots_; }
  int slots_per_gpu() const { return slots_per_gpu_; }

 private:
  std::span<const double> Row(const std::vector<double>& v, int r, int c, int width) const {
    const size_t n = static_cast<size_t>(layers_) * width;
    return {v.data() + static_cast<size_t>(row_of_[static_cast<size_t>(r) * classes_ + c]) * n, n};
  }
  int classes_, layers_, gpus_, slots_, slots_per_gpu_, sources_, gpus_per_node_, nodes_;
  std::vector<double> share_, reach_, reach_node_, slot_load_;
  std::vector<double> node_locality_;  // [source * classes + class]
  std::vector<int32_t> row_of_;        // [source * classes + class] -> row of share_, reach_, ...
};

}  // namespace gimbal::sim
