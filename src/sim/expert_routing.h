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
// dispatch reads, EngineView::class_locality). Tables are rebuilt when the placement changes
// (Rebuild: in place, only the layers the change touched; the result is a fresh build's).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
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
  // Rebuilds the tables for `placement` (the shape of the one they were built for) under `pop`,
  // in the memory they hold. `previous`, when given, must be the placement of the last build, and
  // `pop` unchanged since (same object, same drift epoch; otherwise it is ignored): layers where
  // `placement` holds the same experts in the same slots and gives every source the same routes
  // keep their entries. Either way the tables equal, bit for bit, a fresh build's.
  void Rebuild(const ExpertPopularity& pop, const Placement& placement,
               const Placement* previous = nullptr);
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
  // ReachRow(r, c) over the GPUs of r's own node alone (source r runs on GPU r · gpus / sources;
  // its node's GPUs are first = node · gpus_per_node up to the next node or the last GPU):
  // [l * width + i] for GPU first + i, the same numbers in one run. With one node, ReachRow.
  std::span<const double> OwnNodeReachRow(int r, int c) const {
    if (nodes_ == 1) return ReachRow(r, c);
    const auto at = own_reach_at_[static_cast<size_t>(r) * classes_ + c];
    return {own_reach_.data() + at.first, at.second};
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
  // Fills every entry of layer l (all rows, slot loads and node_term_).
  void BuildLayer(const ExpertPopularity& pop, const Placement& placement, int l);
  // 1 - (1 - x)^top_k for share x, through cache entry `i` (a GPU g: g; a node n: gpus + n),
  // which holds the last kCacheWays shares seen there and their reach: pow is a pure function, so
  // a hit returns exactly what computing it would.
  double ReachOf(double x, int i);

  static constexpr int kCacheWays = 4;
  int classes_, layers_, gpus_, slots_, slots_per_gpu_, sources_, gpus_per_node_, nodes_;
  int top_k_ = 0;
  std::vector<double> share_, reach_, reach_node_, slot_load_;
  std::vector<double> node_locality_;  // [source * classes + class]
  std::vector<int32_t> row_of_;        // [source * classes + class] -> row of share_, reach_, ...
  // What the last build was of: the popularity (object and epoch) and the placement's routing
  // layout (routed or not, its sources), which fix row_of_.
  const ExpertPopularity* built_pop_ = nullptr;
  int64_t built_epoch_ = -1;
  bool built_routed_ = false;
  int built_sources_ = 0;
  // OwnNodeReachRow: copies of reach_ per (row, node) that some source reads, and where each
  // (source, class)'s is: [source * classes + class] -> (offset, length).
  std::vector<double> own_reach_;
  std::vector<std::pair<size_t, size_t>> own_reach_at_;
  std::vector<int64_t> own_reach_of_;  // scratch: [row * nodes + node] -> offset, or -1
  // Per (source, class, layer): the share of the source's pairs its own node serves, / layers
  // (node_locality_ is their sum over layers, in layer order).
  std::vector<double> node_term_;
  // Scratch of BuildLayer.
  std::vector<int32_t> gpu_of_slot_, rep_begin_, rep_slots_;  // the layer's replicas, by expert
  struct Entry {  // one (slot, weight) of a routed source's route, in Placement::Route's order
    int32_t slot, gpu;
    int32_t pair;  // the (expert, weight) pair, an index into pair_expert_ and pair_weight_
  };
  std::vector<Entry> entries_;
  // The layer's distinct (expert, weight) pairs of the routes, and per expert a list of its pairs
  // (first_pair_[expert], then next_pair_[pair]; -1 ends it).
  std::vector<int32_t> pair_expert_, first_pair_, next_pair_;
  std::vector<float> pair_weight_;
  std::vector<double> pair_share_, pair_term_;  // per class: p · weight, k · p · weight / sources
  std::vector<int32_t> entry_begin_;  // [source]: first entry of the source; [sources]: the end
  std::vector<int32_t> same_as_;      // [source]: the first routed source with the same list
  std::vector<uint64_t> list_hash_;   // [source]: a hash of its list
  std::vector<double> source_node_;   // [source * nodes + node]: share of the source's pairs
  std::vector<double> per_gpu_, shared_node_, kp_, shared_term_, slot_term_;
  std::vector<uint64_t> cache_key_;  // [i * kCacheWays + way]: a share's bits
  std::vector<double> cache_value_;  // its reach
  std::vector<uint8_t> cache_next_;  // [i]: the way to replace next
};

}  // namespace gimbal::sim
