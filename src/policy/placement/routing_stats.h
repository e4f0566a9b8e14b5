// Source-aware routing statistics: A[l][s][x] = tokens from source DP rank s routed to logical
// expert x in MoE layer l.
//
// SourceExpertCounts is the plain value a planner reads (one aggregated matrix per layer).
// RoutingStats accumulates per-step counts into one, either over a sliding window of the last N
// recorded steps or with exponential decay (A <- decay * A + step). vLLM's EPLB keeps only
// per-physical-expert totals, which lose the source; these keep it.
//
// Counts are finite, >= 0 and at most kMaxRoutingCount (so sums over a layer stay finite), and
// statistics hold at most kMaxRoutingCells counts. The JSON file format is read and written by
// src/placement/placement_formats.h. Not thread-safe; one writer at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace gimbal {

// The largest count a statistics file may hold: a million tokens a second for 30 years.
inline constexpr double kMaxRoutingCount = 1e15;
// The most counts (layers x sources x experts) statistics may have: 2^26, 512 MiB of doubles.
inline constexpr int64_t kMaxRoutingCells = int64_t{1} << 26;

struct SourceExpertCounts {
  int layers = 0;
  int sources = 0;
  int experts = 0;
  std::vector<double> counts;  // layers * sources * experts, layer-major then source

  static SourceExpertCounts Zeros(int layers, int sources, int experts);

  size_t Index(int l, int s, int x) const {
    return (static_cast<size_t>(l) * sources + s) * experts + x;
  }
  double At(int l, int s, int x) const { return counts[Index(l, s, x)]; }
  double& At(int l, int s, int x) { return counts[Index(l, s, x)]; }
  // The sources x experts block of layer l.
  std::span<const double> Layer(int l) const {
    return {counts.data() + Index(l, 0, 0), static_cast<size_t>(sources) * experts};
  }
  // Sum over sources: the per-expert totals EPLB sees, layers x experts.
  std::vector<double> ExpertTotals() const;

  // Positive dimensions, counts of the right size, every count finite, >= 0 and at most
  // kMaxRoutingCount. The message names the first fault with its layer, source and expert.
  Status Validate() const;
  // Adds `other` element-wise; the shapes must match.
  Status Merge(const SourceExpertCounts& other);
};

struct RoutingStatsOptions {
  enum class Mode { kWindow, kDecay };
  Mode mode = Mode::kWindow;
  int window_steps = 1000;  // kWindow: steps kept (vLLM's EPLB default window is 1000)
  double decay = 0.999;     // kDecay: factor applied to the running counts per recorded step
};

class RoutingStats {
 public:
  RoutingStats(int layers, int sources, int experts, RoutingStatsOptions options = {});

  // Adds tokens to the step being recorded. tokens >= 0 and finite (checked).
  void Add(int layer, int source, int expert, double tokens);
  // Closes the step being recorded: it enters the window (dropping the oldest beyond N) or the
  // decayed sum.
  void EndStep();
  // Adds a whole step (layers * sources * experts counts) and closes it.
  Status RecordStep(std::span<const double> step);

  // The aggregated counts: the sum over the window, or the decayed sum. Excludes the open step.
  const SourceExpertCounts& Counts() const { return total_; }
  int64_t steps_recorded() const { return steps_; }

  // Adds another accumulator of the same shape and options (e.g. from another process): windows
  // are summed step by step, aligned on their most recent step; decayed sums are added.
  Status Merge(const RoutingStats& other);

 private:
  RoutingStatsOptions options_;
  SourceExpertCounts total_;
  std::vector<double> open_;
  std::vector<std::vector<double>> ring_;  // kWindow: recent steps, oldest at ring_head_
  size_t ring_head_ = 0;
  int64_t steps_ = 0;
};

}  // namespace gimbal
