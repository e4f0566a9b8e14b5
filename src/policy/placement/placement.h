// Placement: which logical expert each physical expert slot holds, per MoE layer, and how each
// source DP rank's tokens for an expert are split over that expert's replicas.
//
// Slots are numbered gpu * slots_per_gpu + i. Every GPU has the same number of slots; slots beyond
// `experts / gpus` hold redundant replicas of (hot) experts. The convention matches DeepSeek EPLB's
// phy2log [layers × physical slots]. Token splitting: when `source_routes` is empty, a token goes
// to each replica of its expert with equal probability (vLLM's behaviour); otherwise
// source_routes[(layer * sources + s) * experts + x] lists (slot, weight) pairs summing to 1 for
// tokens of source s routed to logical expert x; an empty list means the even split (planners leave
// the routes of single-replica experts empty: there is nothing to choose).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/status.h"

namespace gimbal {

struct SlotShare {
  int32_t slot = 0;
  float weight = 0;
};

struct Placement {
  int layers = 0;   // MoE layers
  int experts = 0;  // logical experts per layer
  int gpus = 0;
  int slots_per_gpu = 0;
  std::vector<int32_t> phy2log;  // layers * gpus * slots_per_gpu
  int sources = 0;               // DP ranks, when source_routes is set
  std::vector<std::vector<SlotShare>> source_routes;

  int slots() const { return gpus * slots_per_gpu; }
  int32_t Expert(int layer, int slot) const {
    return phy2log[static_cast<size_t>(layer) * slots() + slot];
  }
  int GpuOfSlot(int slot) const { return slot / slots_per_gpu; }

  // Experts laid out in order, `experts / gpus` per GPU, then `redundant_per_gpu` extra slots per
  // GPU filled round-robin with experts 0, 1, 2, ... (so every slot holds a valid expert).
  static Placement Contiguous(int layers, int experts, int gpus, int redundant_per_gpu = 0);

  // Every slot holds an expert in range, every expert has at least one slot in every layer, and
  // source_routes (when present) has the right shape, points at replicas of the right expert and
  // sums to 1 (or is empty). The message names the layer, slot or expert at fault.
  Status Validate() const;

  // replicas[layer][expert] = slots holding it, ascending.
  std::vector<std::vector<std::vector<int32_t>>> Log2Phy() const;

  // The route of source s for expert x in `layer`: source_routes' entry, or the even split over
  // the expert's slots when there are no routes or the entry is empty.
  std::vector<SlotShare> Route(int layer, int source, int expert) const;
};

}  // namespace gimbal
