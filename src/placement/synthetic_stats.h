// Synthetic source x expert statistics with class-skewed sources, for tests, benchmarks and the
// examples.
//
// Traffic classes (code, math, chat, ...) each have their own expert popularity per layer: Zipf
// weights over a per-(layer, class) permutation of the experts. Source s serves mostly one class
// (class s * classes / sources, i.e. contiguous blocks of sources, as a dispatcher with affinity
// makes them) and spreads the rest evenly over all classes. Counts are the expected tokens times
// log-normal noise. Drift: each Next() swaps a few random pairs in every permutation, so
// popularity moves and rebalancing matters.
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

struct SyntheticStatsOptions {
  int layers = 1, sources = 8, experts = 16;
  int classes = 4;
  double zipf_s = 1.0;
  double dominant_share = 0.8;      // of a source's tokens from its own class
  double tokens_per_source = 8192;  // token-expert assignments per source and layer
  double noise_sigma = 0.1;         // log-normal noise on each count
  int drift_swaps = 0;              // swaps per permutation per Next()
  uint64_t seed = 1;
};

class SyntheticStats {
 public:
  explicit SyntheticStats(const SyntheticStatsOptions& options);
  // The statistics of the next window (after drifting the popularity).
  SourceExpertCounts Next();

 private:
  SyntheticStatsOptions o_;
  Rng rng_;
  std::vector<std::vector<int>> perm_;  // (layer * classes + class) -> rank of each expert
  std::vector<double> zipf_;
  bool first_ = true;
};

}  // namespace gimbal
