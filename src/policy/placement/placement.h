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
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace gimbal {

struct SlotShare {
  int32_t slot = 0;
  float weight = 0;
  bool operator==(const SlotShare&) const = default;
};

// A list of routes (each a list of SlotShare), stored flat: one array of shares and one of where
// each route ends, so that a plan's hundreds of thousands of routes cost two allocations, not one
// each. Routes are appended in order; route i is read as a span, valid until the next change.
// At most 2^32 - 1 shares in all (a plan has one per replica a source uses: far fewer).
class SourceRoutes {
 public:
  SourceRoutes() = default;
  // From one vector per route (tests, tools).
  explicit SourceRoutes(const std::vector<std::vector<SlotShare>>& routes);

  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::span<const SlotShare> operator[](size_t i) const {
    const uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    return {shares_.data() + begin, ends_[i] - begin};
  }
  // All shares, route after route.
  std::span<const SlotShare> shares() const { return shares_; }

  // Appends one route (empty: the even split); `route` must not view this table.
  void Append(std::span<const SlotShare> route);
  // Appends lens.size() routes, route i with lens[i] >= 0 shares, and returns their shares (route
  // after route, zero) for the caller to fill before the next change.
  std::span<SlotShare> AppendRoutes(std::span<const int32_t> lens);
  // Appends `n` empty routes.
  void AppendEmpty(size_t n) { ends_.resize(ends_.size() + n, ends_.empty() ? 0 : ends_.back()); }
  // Appends every route of `other` (which may be this table).
  void Append(const SourceRoutes& other);
  // Keeps the first `n` routes (n <= size()).
  void Truncate(size_t n);
  void reserve(size_t routes, size_t shares) {
    ends_.reserve(routes);
    shares_.reserve(shares);
  }
  void clear() {
    ends_.clear();
    shares_.clear();
  }
  std::vector<std::vector<SlotShare>> ToNested() const;

  bool operator==(const SourceRoutes&) const = default;

 private:
  std::vector<SlotShare> shares_;
  std::vector<uint32_t> ends_;  // ends_[i]: one past route i's last share in shares_
};

// Physical slots of one layer (GPUs x slots per GPU), and of all layers, at most (as the placement
// JSON format allows): larger counts would overflow the int indexing and cost quadratic search
// time.
inline constexpr int64_t kMaxSlots = int64_t{1} << 20;
inline constexpr int64_t kMaxPlacementCells = int64_t{1} << 26;

struct Placement {
  int layers = 0;   // MoE layers
  int experts = 0;  // logical experts per layer
  int gpus = 0;
  int slots_per_gpu = 0;
  std::vector<int32_t> phy2log;  // layers * gpus * slots_per_gpu
  int sources = 0;               // DP ranks, when source_routes is set
  SourceRoutes source_routes;

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
