#include "placement/synthetic_stats.h"

#include <cmath>
#include <numeric>

namespace gimbal {

SyntheticStats::SyntheticStats(const SyntheticStatsOptions& options)
    : o_(options), rng_(options.seed) {
  zipf_ = ZipfWeights(static_cast<size_t>(o_.experts), o_.zipf_s);
  perm_.resize(static_cast<size_t>(o_.layers) * o_.classes);
  for (auto& p : perm_) {
    p.resize(o_.experts);
    std::iota(p.begin(), p.end(), 0);
    for (int i = o_.experts - 1; i > 0; --i) {
      std::swap(p[i], p[rng_.UniformInt(static_cast<uint64_t>(i) + 1)]);
    }
  }
}

SourceExpertCounts SyntheticStats::Next() {
  if (!first_) {
    for (auto& p : perm_) {
      for (int k = 0; k < o_.drift_swaps; ++k) {
        std::swap(p[rng_.UniformInt(o_.experts)], p[rng_.UniformInt(o_.experts)]);
      }
    }
  }
  first_ = false;
  SourceExpertCounts c = SourceExpertCounts::Zeros(o_.layers, o_.sources, o_.experts);
  for (int l = 0; l < o_.layers; ++l) {
    for (int s = 0; s < o_.sources; ++s) {
      const int own = static_cast<int>(static_cast<int64_t>(s) * o_.classes / o_.sources);
      for (int k = 0; k < o_.classes; ++k) {
        const double share =
            (k == own ? o_.dominant_share : 0.0) + (1 - o_.dominant_share) / o_.classes;
        const std::vector<int>& p = perm_[static_cast<size_t>(l) * o_.classes + k];
        for (int x = 0; x < o_.experts; ++x) {
          c.At(l, s, x) += o_.tokens_per_source * share * zipf_[p[x]];
        }
      }
      for (int x = 0; x < o_.experts; ++x) {
        c.At(l, s, x) = std::round(c.At(l, s, x) * rng_.LogNormal(0, o_.noise_sigma));
      }
    }
  }
  return c;
}

}  // namespace gimbal
