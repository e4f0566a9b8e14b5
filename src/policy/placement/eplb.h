// The DeepSeek EPLB baseline, written from its published description.
//
// Input: per MoE layer, the token load of each logical expert (the sum over sources: EPLB has no
// source information). Output, in EPLB's convention: phy2log [layers x physical slots], log2phy
// [layers x experts x max replicas] (-1 padded) and logcnt [layers x experts].
//  - Hierarchical, when the expert groups divide evenly over nodes: pack groups onto nodes
//    balancing their load, replicate experts within each node, pack each node's replicas onto its
//    GPUs.
//  - Global otherwise: replicate over all slots, pack replicas onto GPUs.
// Replication is greedy by per-replica load (each extra slot goes to the expert with the largest
// load / replicas). Packing is balanced: heaviest item first onto the least-loaded pack with a free
// place. Ties go to the lower index, so results are deterministic. Slots on a GPU are in packing
// order. Tokens are meant to be split evenly over an expert's replicas (vLLM's behaviour).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "policy/placement/placement.h"

namespace gimbal {

struct EplbOptions {
  int physical_slots = 0;  // over all GPUs; a multiple of gpus, >= experts
  int groups = 1;          // expert groups (DeepSeek-V3: 8)
  int nodes = 1;
  int gpus = 1;  // a multiple of nodes
};

struct EplbResult {
  int layers = 0, experts = 0, physical_slots = 0, max_replicas = 0;
  std::vector<int32_t> phy2log;  // layers x physical_slots
  std::vector<int32_t> log2phy;  // layers x experts x max_replicas, -1 padded
  std::vector<int32_t> logcnt;   // layers x experts
  bool hierarchical = false;

  // As a Placement (no source routes: the even split).
  Placement ToPlacement(int gpus) const;
};

// weight: layers x experts loads (finite, >= 0).
Result<EplbResult> EplbRebalance(std::span<const double> weight, int layers, int experts,
                                 const EplbOptions& options);

// Balanced packing of items into `packs` packs of equal size (items.size() a multiple of packs):
// returns (pack, rank within pack) per item. Exposed for tests.
std::vector<std::pair<int, int>> BalancedPacking(std::span<const double> items, int packs);

}  // namespace gimbal
