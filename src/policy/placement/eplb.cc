#include "policy/placement/eplb.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace gimbal {

std::vector<std::pair<int, int>> BalancedPacking(std::span<const double> items, int packs) {
  const int n = static_cast<int>(items.size());
  GIMBAL_CHECK(packs > 0 && n % packs == 0, "BalancedPacking: items must divide over packs");
  const int capacity = n / packs;
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return items[a] > items[b]; });
  std::vector<double> load(packs, 0.0);
  std::vector<int> count(packs, 0);
  std::vector<std::pair<int, int>> out(n);
  for (int i : order) {
    int best = -1;
    for (int k = 0; k < packs; ++k) {
      if (count[k] < capacity && (best < 0 || load[k] < load[best])) best = k;
    }
    out[i] = {best, count[best]++};
    load[best] += items[i];
  }
  return out;
}

namespace {

// Greedy replication of `w.size()` experts over `slots` slots: phy -> logical, and counts.
void Replicate(std::span<const double> w, int slots, std::vector<int>& phy, std::vector<int>& cnt) {
  const int n = static_cast<int>(w.size());
  phy.resize(slots);
  cnt.assign(n, 1);
  std::iota(phy.begin(), phy.begin() + n, 0);
  for (int i = n; i < slots; ++i) {
    int best = 0;
    for (int x = 1; x < n; ++x) {
      if (w[x] / cnt[x] > w[best] / cnt[best]) best = x;
    }
    phy[i] = best;
    cnt[best]++;
  }
}

// One layer: fills `out` (physical_slots) with logical experts.
void RebalanceLayer(std::span<const double> w, int groups, int nodes, int gpus, int slots,
                    std::span<int32_t> out) {
  const int experts = static_cast<int>(w.size());
  const int group_size = experts / groups;
  // 1. Groups onto nodes.
  std::vector<double> group_load(groups, 0.0);
  for (int x = 0; x < experts; ++x) group_load[x / group_size] += w[x];
  const auto group_pack = BalancedPacking(group_load, nodes);
  const int experts_per_node = experts / nodes;
  const int slots_per_node = slots / nodes;
  const int gpus_per_node = gpus / nodes;
  const int slots_per_gpu = slots / gpus;
  // node_experts[n][i]: the i-th logical expert of node n (groups in packing order).
  std::vector<std::vector<int>> node_experts(nodes, std::vector<int>(experts_per_node));
  for (int gr = 0; gr < groups; ++gr) {
    const auto [node, rank] = group_pack[gr];
    for (int k = 0; k < group_size; ++k) {
      node_experts[node][rank * group_size + k] = gr * group_size + k;
    }
  }
  for (int node = 0; node < nodes; ++node) {
    // 2. Replicate within the node.
    std::vector<double> nw(experts_per_node);
    for (int i = 0; i < experts_per_node; ++i) nw[i] = w[node_experts[node][i]];
    std::vector<int> phy, cnt;
    Replicate(nw, slots_per_node, phy, cnt);
    // 3. Pack replicas onto the node's GPUs.
    std::vector<double> per_replica(slots_per_node);
    for (int i = 0; i < slots_per_node; ++i) per_replica[i] = nw[phy[i]] / cnt[phy[i]];
    const auto pack = BalancedPacking(per_replica, gpus_per_node);
    for (int i = 0; i < slots_per_node; ++i) {
      const int gpu = node * gpus_per_node + pack[i].first;
      out[static_cast<size_t>(gpu) * slots_per_gpu + pack[i].second] = node_experts[node][phy[i]];
    }
  }
}

}  // namespace

Result<EplbResult> EplbRebalance(std::span<const double> weight, int layers, int experts,
                                 const EplbOptions& o) {
  if (layers <= 0 || experts <= 0 || weight.size() != static_cast<size_t>(layers) * experts) {
    return InvalidArgument(
        fmt::format("eplb: {} weights for {} layers x {} experts", weight.size(), layers, experts));
  }
  for (size_t i = 0; i < weight.size(); ++i) {
    if (!std::isfinite(weight[i]) || weight[i] < 0) {
      return InvalidArgument(fmt::format("eplb: load of layer {} expert {} is {}", i / experts,
                                         i % experts, weight[i]));
    }
  }
  if (o.gpus <= 0 || o.nodes <= 0 || o.gpus % o.nodes != 0) {
    return InvalidArgument(
        fmt::format("eplb: {} GPUs do not divide over {} nodes", o.gpus, o.nodes));
  }
  if (o.physical_slots < experts || o.physical_slots % o.gpus != 0) {
    return InvalidArgument(
        fmt::format("eplb: {} physical slots must be >= {} experts and a multiple of {} GPUs",
                    o.physical_slots, experts, o.gpus));
  }
  EplbResult r;
  r.layers = layers;
  r.experts = experts;
  r.physical_slots = o.physical_slots;
  r.hierarchical = o.groups > 0 && experts % o.groups == 0 && o.groups % o.nodes == 0 &&
                   o.physical_slots % o.nodes == 0 && o.nodes > 1;
  const int groups = r.hierarchical ? o.groups : 1;
  const int nodes = r.hierarchical ? o.nodes : 1;
  r.phy2log.assign(static_cast<size_t>(layers) * o.physical_slots, -1);
  for (int l = 0; l < layers; ++l) {
    RebalanceLayer(weight.subspan(static_cast<size_t>(l) * experts, experts), groups, nodes, o.gpus,
                   o.physical_slots,
                   std::span<int32_t>(r.phy2log).subspan(static_cast<size_t>(l) * o.physical_slots,
                                                         o.physical_slots));
  }
  r.logcnt.assign(static_cast<size_t>(layers) * experts, 0);
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < o.physical_slots; ++s) {
      const int32_t x = r.phy2log[static_cast<size_t>(l) * o.physical_slots + s];
      r.max_replicas = std::max(r.max_replicas, ++r.logcnt[static_cast<size_t>(l) * experts + x]);
    }
  }
  r.log2phy.assign(static_cast<size_t>(layers) * experts * r.max_replicas, -1);
  std::vector<int> fill(static_cast<size_t>(layers) * experts, 0);
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < o.physical_slots; ++s) {
      const int32_t x = r.phy2log[static_cast<size_t>(l) * o.physical_slots + s];
      const size_t lx = static_cast<size_t>(l) * experts + x;
      r.log2phy[lx * r.max_replicas + fill[lx]++] = s;
    }
  }
  return r;
}

Placement EplbResult::ToPlacement(int gpus) const {
  Placement p;
  p.layers = layers;
  p.experts = experts;
  p.gpus = gpus;
  p.slots_per_gpu = physical_slots / gpus;
  p.phy2log = phy2log;
  return p;
}

}  // namespace gimbal
