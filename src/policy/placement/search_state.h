// SearchState: the state of Gimbal's local search over one layer's placement and its surrogate
// objective (internal to gimbal_placement.cc; declared here to keep that file readable).
//
// Surrogate objective: load_coef x the peak GPU load with every expert's tokens split evenly over
// its replicas, + traffic_coef x the traffic with every token at its nearest replica (same GPU,
// else same node, else across nodes), + move_coef x the copies against the current placement.
// Evaluating a swap costs O(sources + gpus); applying one or replacing a slot's expert updates the
// state incrementally. An expert's traffic is always a fresh sum over the sources in source order
// (never updated by differences), so it is the same however the state was reached. The state keeps
// the map valid only as far as its callers do: swaps must be SwapValid, and Replace must not put an
// expert twice on one GPU. Not for concurrent use, even through const methods (the traffic sums
// share a scratch buffer).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "policy/placement/placement_problem.h"

namespace gimbal {
namespace placement_internal {

// The local search's state and its surrogate objective: per-GPU load with tokens split evenly
// over replicas, traffic with every token at its nearest replica, and copies against the current
// placement.
class SearchState {
 public:
  SearchState(const LayerProblem& p, std::vector<int32_t> map) : p_(p), map_(std::move(map)) {
    // Whether node n holds GPUs [n x gpus_per_node_, (n + 1) x gpus_per_node_) (CostsByGpu's
    // fast path); 0 when not.
    gpus_per_node_ = p.nodes > 0 && p.gpus % p.nodes == 0 ? p.gpus / p.nodes : 0;
    for (int g = 0; g < p.gpus && gpus_per_node_ > 0; ++g) {
      if (p.node_of_gpu[g] != g / gpus_per_node_) gpus_per_node_ = 0;
    }
    gpu_cost_.resize(static_cast<size_t>(kBatch) * p.gpus);
    node_cost_.resize(p.nodes);
    cnt_.assign(static_cast<size_t>(p.experts) * p.gpus, 0);
    ncnt_.assign(static_cast<size_t>(p.experts) * p.nodes, 0);
    r_.assign(p.experts, 0);
    for (int slot = 0; slot < p.slots(); ++slot) Count(map_[slot], Gpu(slot), +1);
    RecomputeAll();
  }

  const std::vector<int32_t>& map() const { return map_; }
  int moves() const { return moves_; }
  int replicas(int x) const { return r_[x]; }
  int count(int x, int g) const { return cnt_[static_cast<size_t>(x) * p_.gpus + g]; }
  int node_count(int x, int n) const { return ncnt_[static_cast<size_t>(x) * p_.nodes + n]; }
  double gpu_load(int g) const { return lp_[g]; }
  double traffic(int x) const { return traffic_[x]; }
  int max_gpu() const { return top_[0].second; }
  int Gpu(int slot) const { return slot / p_.slots_per_gpu; }

  double Objective() const {
    return p_.load_coef() * top_[0].first + p_.traffic_coef() * traffic_sum_ +
           p_.move_coef() * moves_;
  }

  // Traffic cost of expert x if GPU `rem` lost a replica and `add` gained one (-1: none): the sum
  // over sources, in source order, of the source's tokens times the cost of its nearest replica
  // (0 on its GPU, alpha on its node, else beta). Terms of cost 0 add +0.0, which leaves the sum
  // unchanged, so the sum equals the one over the sources that pay.
  double Traffic(int x, int rem, int add) const {
    double* gc = gpu_cost_.data();
    CostsByGpu(x, rem, add, gc);
    const double* a = &by_expert_[static_cast<size_t>(x) * p_.sources];
    const int* sg = p_.source_gpu.data();
    double t = 0;
    for (int s = 0; s < p_.sources; ++s) t += a[s] * gc[sg[s]];
    return t;
  }

  // Traffic(x1, rem1, add1) and Traffic(x2, rem2, add2), the two sums side by side (each in
  // source order, as in Traffic).
  std::pair<double, double> Traffic2(int x1, int rem1, int add1, int x2, int rem2, int add2) const {
    double* gc1 = gpu_cost_.data();
    double* gc2 = gc1 + p_.gpus;
    CostsByGpu(x1, rem1, add1, gc1);
    CostsByGpu(x2, rem2, add2, gc2);
    const double* a1 = &by_expert_[static_cast<size_t>(x1) * p_.sources];
    const double* a2 = &by_expert_[static_cast<size_t>(x2) * p_.sources];
    const int* sg = p_.source_gpu.data();
    double t1 = 0, t2 = 0;
    for (int s = 0; s < p_.sources; ++s) {
      t1 += a1[s] * gc1[sg[s]];
      t2 += a2[s] * gc2[sg[s]];
    }
    return {t1, t2};
  }

  // A swap exchanges the experts of two slots on different GPUs; it must not put an expert twice
  // on one GPU.
  bool SwapValid(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    return g1 != g2 && x1 != x2 && count(x1, g2) == 0 && count(x2, g1) == 0;
  }

  // Copies a valid swap adds (may be negative when it restores the current placement).
  int SwapMoves(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    return MoveDelta(x1, g1, -1) + MoveDelta(x1, g2, +1) + MoveDelta(x2, g2, -1) +
           MoveDelta(x2, g1, +1);
  }

  // Per-replica load of the expert in `slot` (even split).
  double SlotLoad(int slot) const { return p_.totals[map_[slot]] / r_[map_[slot]]; }

  // Traffic change of a valid swap.
  double SwapTraffic(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    const auto [t1, t2] = Traffic2(x1, g1, g2, x2, g2, g1);
    return t1 - traffic_[x1] + t2 - traffic_[x2];
  }

  // (objective change, moves change) of a valid swap.
  std::pair<double, int> SwapDelta(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    const double l1 = p_.totals[x1] / r_[x1], l2 = p_.totals[x2] / r_[x2];
    const double n1 = lp_[g1] - l1 + l2, n2 = lp_[g2] - l2 + l1;
    double other = -std::numeric_limits<double>::infinity();
    for (const auto& [v, g] : top_) {
      if (g >= 0 && g != g1 && g != g2) {
        other = v;
        break;
      }
    }
    const double new_max = std::max({n1, n2, other});
    const auto [t1, t2] = Traffic2(x1, g1, g2, x2, g2, g1);
    const double dt = t1 - traffic_[x1] + t2 - traffic_[x2];
    const int dm = MoveDelta(x1, g1, -1) + MoveDelta(x1, g2, +1) + MoveDelta(x2, g2, -1) +
                   MoveDelta(x2, g1, +1);
    return {
        p_.load_coef() * (new_max - top_[0].first) + p_.traffic_coef() * dt + p_.move_coef() * dm,
        dm};
  }

  void ApplySwap(int a, int b) {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    const double l1 = p_.totals[x1] / r_[x1], l2 = p_.totals[x2] / r_[x2];
    Count(x1, g1, -1);
    Count(x2, g2, -1);
    Count(x1, g2, +1);
    Count(x2, g1, +1);
    map_[a] = x2;
    map_[b] = x1;
    lp_[g1] += l2 - l1;
    lp_[g2] += l1 - l2;
    SetTraffic(x1, x2);
    UpdateTop();
  }

  // The state if expert x replaced the expert of `slot`, without applying it. The slot's expert
  // must keep another replica and x must not be on the slot's GPU.
  struct ReplaceEval {
    double objective;  // surrogate objective
    int moves;         // copies
    double peak;       // peak GPU load (even split)
  };
  ReplaceEval ReplaceValue(int slot, int x) const {
    const int c = map_[slot], g = Gpu(slot);
    const double lc_old = p_.totals[c] / r_[c], lc_new = p_.totals[c] / (r_[c] - 1);
    const double lx_old = r_[x] > 0 ? p_.totals[x] / r_[x] : 0.0;
    const double lx_new = p_.totals[x] / (r_[x] + 1);
    const int* cc = &cnt_[static_cast<size_t>(c) * p_.gpus];
    const int* cx = &cnt_[static_cast<size_t>(x) * p_.gpus];
    double new_max = -std::numeric_limits<double>::infinity();
    for (int h = 0; h < p_.gpus; ++h) {
      // A GPU holding neither expert and not the slot's keeps its load (the terms below are all
      // +0.0 then, and adding them leaves a load unchanged).
      if ((cc[h] | cx[h]) == 0 && h != g) {
        new_max = std::max(new_max, lp_[h]);
        continue;
      }
      const int nc = cc[h] - (h == g), nx = cx[h] + (h == g);
      const double l = lp_[h] + nc * lc_new - cc[h] * lc_old + nx * lx_new - cx[h] * lx_old;
      new_max = std::max(new_max, l);
    }
    const auto [tc, tx] = Traffic2(c, g, -1, x, -1, g);
    const double dt = tc - traffic_[c] + tx - traffic_[x];
    const int moves = moves_ + MoveDelta(c, g, -1) + MoveDelta(x, g, +1);
    return {
        p_.load_coef() * new_max + p_.traffic_coef() * (traffic_sum_ + dt) + p_.move_coef() * moves,
        moves, new_max};
  }

  // Puts expert x in `slot` (replica counts change); recomputes the affected state.
  void Replace(int slot, int x) {
    const int old = map_[slot], g = Gpu(slot);
    if (old == x) return;
    AddExpertLoad(old, -1);
    AddExpertLoad(x, -1);
    Count(old, g, -1);
    Count(x, g, +1);
    map_[slot] = x;
    AddExpertLoad(old, +1);
    AddExpertLoad(x, +1);
    SetTraffic(old, x);
    UpdateTop();
  }

 private:
  // Recomputes the traffic of experts x1 and x2 (distinct), then the sum, x1 first.
  void SetTraffic(int x1, int x2) {
    const auto [t1, t2] = Traffic2(x1, -1, -1, x2, -1, -1);
    traffic_sum_ += t1 - traffic_[x1];
    traffic_[x1] = t1;
    traffic_sum_ += t2 - traffic_[x2];
    traffic_[x2] = t2;
  }

  static constexpr int kBatch = 4;  // experts whose traffic RecomputeAll sums side by side
  static_assert(kBatch >= 2, "Traffic2 uses two rows of gpu_cost_");

  // gc[g] = the cost of a token from GPU g to expert x's nearest replica, with `rem` and `add` as
  // in Traffic.
  void CostsByGpu(int x, int rem, int add, double* gc) const {
    const int* c = &cnt_[static_cast<size_t>(x) * p_.gpus];
    const int* nc = &ncnt_[static_cast<size_t>(x) * p_.nodes];
    const int rem_node = rem >= 0 ? p_.node_of_gpu[rem] : -1;
    const int add_node = add >= 0 ? p_.node_of_gpu[add] : -1;
    double* nodec = node_cost_.data();
    for (int n = 0; n < p_.nodes; ++n) {
      nodec[n] = nc[n] - (n == rem_node) + (n == add_node) > 0 ? p_.alpha : p_.beta;
    }
    if (gpus_per_node_ > 0) {
      // Nodes of consecutive GPUs: one node's cost per block (no lookup per GPU), then the two
      // GPUs whose counts change.
      for (int n = 0, g = 0; n < p_.nodes; ++n) {
        const double v = nodec[n];
        for (const int end = g + gpus_per_node_; g < end; ++g) gc[g] = c[g] > 0 ? 0.0 : v;
      }
      for (const int g : {rem, add}) {
        if (g >= 0) gc[g] = c[g] - (g == rem) + (g == add) > 0 ? 0.0 : nodec[p_.node_of_gpu[g]];
      }
      return;
    }
    const int* node_of = p_.node_of_gpu.data();
    for (int g = 0; g < p_.gpus; ++g) {
      gc[g] = c[g] - (g == rem) + (g == add) > 0 ? 0.0 : nodec[node_of[g]];
    }
  }

  int MoveDelta(int x, int g, int d) const {
    const size_t i = static_cast<size_t>(x) * p_.gpus + g;
    return std::max(0, cnt_[i] + d - p_.current_count[i]) -
           std::max(0, cnt_[i] - p_.current_count[i]);
  }
  // Adds (sign +1) or removes (-1) expert x's even-split load on the GPUs holding it.
  void AddExpertLoad(int x, int sign) {
    if (r_[x] <= 0) return;
    const double per = sign * p_.totals[x] / r_[x];
    const int* c = &cnt_[static_cast<size_t>(x) * p_.gpus];
    for (int g = 0; g < p_.gpus; ++g) {
      if (c[g] > 0) lp_[g] += per * c[g];
    }
  }
  void Count(int x, int g, int d) {
    const size_t i = static_cast<size_t>(x) * p_.gpus + g;
    moves_ += MoveDelta(x, g, d);
    cnt_[i] += d;
    ncnt_[static_cast<size_t>(x) * p_.nodes + p_.node_of_gpu[g]] += d;
    r_[x] += d;
  }
  void RecomputeAll() {
    lp_.assign(p_.gpus, 0.0);
    for (int slot = 0; slot < p_.slots(); ++slot) {
      const int x = map_[slot];
      lp_[Gpu(slot)] += p_.totals[x] / r_[x];
    }
    traffic_.assign(p_.experts, 0.0);
    traffic_sum_ = 0;
    // Traffic(x, -1, -1) for kBatch experts at a time: each sum runs in source order as in
    // Traffic, side by side with the others.
    const int* sg = p_.source_gpu.data();
    int x = 0;
    for (; x + kBatch <= p_.experts; x += kBatch) {
      double* gc = gpu_cost_.data();
      for (int k = 0; k < kBatch; ++k) CostsByGpu(x + k, -1, -1, gc + k * p_.gpus);
      const double* a = &by_expert_[static_cast<size_t>(x) * p_.sources];
      std::array<double, kBatch> t{};
      for (int s = 0; s < p_.sources; ++s) {
        for (int k = 0; k < kBatch; ++k) t[k] += a[k * p_.sources + s] * gc[k * p_.gpus + sg[s]];
      }
      for (int k = 0; k < kBatch; ++k) traffic_[x + k] = t[k];
    }
    for (; x < p_.experts; ++x) traffic_[x] = Traffic(x, -1, -1);
    for (int y = 0; y < p_.experts; ++y) traffic_sum_ += traffic_[y];
    UpdateTop();
  }
  void UpdateTop() {
    top_.fill({-std::numeric_limits<double>::infinity(), -1});
    for (int g = 0; g < p_.gpus; ++g) {
      std::pair<double, int> e{lp_[g], g};
      for (auto& t : top_) {
        if (e.first > t.first) std::swap(e, t);
      }
    }
  }

  const LayerProblem& p_;
  // Each expert's counts by source, contiguous, negative counts as 0: p.by_expert.
  const double* by_expert_ = p_.by_expert.data();
  mutable std::vector<double> gpu_cost_, node_cost_;  // Traffic's scratch
  std::vector<int32_t> map_;
  std::vector<int> cnt_, ncnt_, r_;
  std::vector<double> lp_, traffic_;
  double traffic_sum_ = 0;
  int moves_ = 0;
  int gpus_per_node_ = 0;
  std::array<std::pair<double, int>, 3> top_;
};

}  // namespace placement_internal
}  // namespace gimbal
