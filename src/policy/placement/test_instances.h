// Random placement instances shared by the placement tests and benchmark.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/random.h"
#include "policy/placement/placement.h"

namespace gimbal {

// A random valid placement: every expert once, the remaining slots random experts, no expert twice
// on one GPU (needs slots_per_gpu <= experts).
inline Placement RandomPlacement(Rng& rng, int layers, int experts, int gpus, int slots_per_gpu) {
  Placement p;
  p.layers = layers;
  p.experts = experts;
  p.gpus = gpus;
  p.slots_per_gpu = slots_per_gpu;
  for (int l = 0; l < layers; ++l) {
    for (int attempt = 0;; ++attempt) {
      std::vector<int32_t> items(experts);
      std::iota(items.begin(), items.end(), 0);
      while (static_cast<int>(items.size()) < p.slots()) {
        items.push_back(static_cast<int32_t>(rng.UniformInt(experts)));
      }
      for (int i = static_cast<int>(items.size()) - 1; i > 0; --i) {
        std::swap(items[i], items[rng.UniformInt(static_cast<uint64_t>(i) + 1)]);
      }
      bool dup = false;
      for (int g = 0; g < gpus && !dup; ++g) {
        std::vector<int32_t> v(items.begin() + g * slots_per_gpu,
                               items.begin() + (g + 1) * slots_per_gpu);
        std::sort(v.begin(), v.end());
        dup = std::adjacent_find(v.begin(), v.end()) != v.end();
      }
      if (!dup || attempt > 100) {
        p.phy2log.insert(p.phy2log.end(), items.begin(), items.end());
        break;
      }
    }
  }
  return p;
}

}  // namespace gimbal
