#include "sim/expert_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/random.h"
#include "core/status.h"

namespace gimbal::sim {
namespace {

std::vector<int> Permutation(int n, Rng& rng) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = n - 1; i > 0; --i) {
    std::swap(perm[i], perm[rng.UniformInt(static_cast<uint64_t>(i) + 1)]);
  }
  return perm;
}

// Caps entries at `cap` and redistributes the excess over the rest, keeping the sum at 1.
void CapAndNormalise(std::span<double> p, double cap) {
  for (int iter = 0; iter < 64; ++iter) {
    double excess = 0;
    double free_mass = 0;
    for (double v : p) {
      if (v > cap)
        excess += v - cap;
      else
        free_mass += v;
    }
    if (excess <= 1e-15) break;
    for (double& v : p) {
      if (v >= cap)
        v = cap;
      else
        v += excess * (free_mass > 0 ? v / free_mass : 1.0 / static_cast<double>(p.size()));
    }
  }
}

}  // namespace

ExpertPopularity::ExpertPopularity(const std::vector<TrafficClassSpec>& classes, int moe_layers,
                                   int experts, int top_k, double overlap, uint64_t seed)
    : classes_(static_cast<int>(classes.size())),
      layers_(moe_layers),
      experts_(experts),
      top_k_(top_k),
      overlap_(overlap),
      seed_(seed) {
  GIMBAL_CHECK(classes_ > 0 && layers_ > 0 && experts_ > 0 && top_k_ > 0 && top_k_ <= experts_,
               "ExpertPopularity needs classes, layers, experts and 0 < top_k <= experts");
  p_.assign(static_cast<size_t>(classes_) * layers_ * experts_, 0);
  perm_.assign(p_.size(), 0);
  Rng base(seed);
  Rng shared_rng = base.Fork(0x5eed);
  shared_.resize(layers_);
  for (int l = 0; l < layers_; ++l) {
    const auto w = ZipfWeights(experts_, 1.0);
    const auto perm = Permutation(experts_, shared_rng);
    shared_[l].resize(experts_);
    for (int i = 0; i < experts_; ++i) shared_[l][perm[i]] = w[i];
  }
  for (int c = 0; c < classes_; ++c) {
    Rng rng = base.Fork(static_cast<uint64_t>(c) + 1);
    zipf_.push_back(ZipfWeights(experts_, classes[c].zipf));
    for (int l = 0; l < layers_; ++l) {
      const auto perm = Permutation(experts_, rng);
      std::copy(perm.begin(), perm.end(),
                perm_.begin() +
                    static_cast<ptrdiff_t>((static_cast<size_t>(c) * layers_ + l) * experts_));
      FillRow(c, l);
    }
  }
}

void ExpertPopularity::FillRow(int c, int l) {
  const size_t base = (static_cast<size_t>(c) * layers_ + l) * experts_;
  std::span<double> row(p_.data() + base, static_cast<size_t>(experts_));
  const int* perm = perm_.data() + base;
  const auto& w = zipf_[c];
  for (int i = 0; i < experts_; ++i) row[perm[i]] = (1 - overlap_) * w[i];
  for (int x = 0; x < experts_; ++x) row[x] += overlap_ * shared_[l][x];
  CapAndNormalise(row, 1.0 / top_k_);
}

void ExpertPopularity::Drift(double fraction) {
  GIMBAL_CHECK(fraction > 0 && fraction <= 1, "drift fraction must be in (0, 1]");
  ++epoch_;
  if (experts_ < 2) return;
  Rng rng = Rng(seed_).Fork(0xd71f7).Fork(static_cast<uint64_t>(epoch_));
  const int m = std::clamp(static_cast<int>(std::lround(fraction * experts_)), 2, experts_);
  std::vector<int> pos(experts_), picked(m);
  for (int c = 0; c < classes_; ++c) {
    for (int l = 0; l < layers_; ++l) {
      // Pick m distinct positions (partial Fisher-Yates), then shuffle their experts.
      std::iota(pos.begin(), pos.end(), 0);
      for (int i = 0; i < m; ++i) {
        std::swap(pos[i], pos[i + rng.UniformInt(static_cast<uint64_t>(experts_ - i))]);
      }
      int* perm = perm_.data() + (static_cast<size_t>(c) * layers_ + l) * experts_;
      for (int i = 0; i < m; ++i) picked[i] = perm[pos[i]];
      for (int i = m - 1; i > 0; --i) {
        std::swap(picked[i], picked[rng.UniformInt(static_cast<uint64_t>(i) + 1)]);
      }
      for (int i = 0; i < m; ++i) perm[pos[i]] = picked[i];
      FillRow(c, l);
    }
  }
}

RoutingTables::RoutingTables(const ExpertPopularity& pop, const Placement& placement, int sources,
                             int gpus_per_node)
    : classes_(pop.classes()),
      layers_(pop.layers()),
      gpus_(placement.gpus),
      slots_(placement.slots()),
      slots_per_gpu_(placement.slots_per_gpu),
      sources_(sources),
      gpus_per_node_(gpus_per_node > 0 ? gpus_per_node : placement.gpus),
      nodes_((placement.gpus + gpus_per_node_ - 1) / gpus_per_node_) {
  GIMBAL_CHECK(placement.layers == pop.layers() && placement.experts == pop.experts(),
               "placement shape does not match the model");
  const auto l2p = placement.Log2Phy();
  const int experts = pop.experts();
  const int k = pop.top_k();
  const bool routed = !placement.source_routes.empty();
  // A source the placement routes has rows of its own; the others route every token alike (over
  // all replicas evenly), so one row per class serves them all.
  row_of_.resize(static_cast<size_t>(sources) * classes_);
  int32_t rows = classes_;  // rows 0..classes-1: the sources without routes
  for (int r = 0; r < sources; ++r) {
    for (int c = 0; c < classes_; ++c) {
      row_of_[static_cast<size_t>(r) * classes_ + c] = routed && r < placement.sources ? rows++ : c;
    }
  }
  share_.assign(static_cast<size_t>(rows) * layers_ * gpus_, 0);
  reach_.assign(share_.size(), 0);
  reach_node_.assign(static_cast<size_t>(rows) * layers_ * nodes_, 0);
  slot_load_.assign(static_cast<size_t>(classes_) * layers_ * slots_, 0);
  node_locality_.assign(static_cast<size_t>(sources) * classes_, 0);
  std::vector<double> per_gpu(gpus_), shared_node(nodes_);
  for (int c = 0; c < classes_; ++c) {
    for (int l = 0; l < layers_; ++l) {
      const auto p = pop.Row(c, l);
      double* slot_load = slot_load_.data() + (static_cast<size_t>(c) * layers_ + l) * slots_;
      bool shared_done = false;  // the row of the sources without routes is filled
      for (int r = 0; r < sources; ++r) {
        const int own_node =
            static_cast<int>(static_cast<int64_t>(r) * gpus_ / sources) / gpus_per_node_;
        const bool own_route = routed && r < placement.sources;  // else the shared row
        if (!own_route && shared_done) {
          // Same row as the first such source: only its share of the slot loads and its own
          // node's locality remain (the same sums, in the same order, as computing it afresh).
          for (int x = 0; x < experts; ++x) {
            const auto& replicas = l2p[l][x];
            const double each = p[x] / static_cast<double>(replicas.size());
            for (int32_t slot : replicas) slot_load[slot] += k * each / sources;
          }
          node_locality_[static_cast<size_t>(r) * classes_ + c] +=
              std::min(1.0, shared_node[own_node]) / layers_;
          continue;
        }
        std::fill(per_gpu.begin(), per_gpu.end(), 0.0);
        for (int x = 0; x < experts; ++x) {
          const auto& replicas = l2p[l][x];
          if (own_route) {
            // Placement::Route without its copy: the source's route, or when that is empty an
            // even split over the replicas at float weights, as Route gives.
            const auto& route =
                placement.source_routes[(static_cast<size_t>(l) * placement.sources + r) *
                                            placement.experts +
                                        x];
            if (!route.empty()) {
              for (const SlotShare& sh : route) {
                per_gpu[placement.GpuOfSlot(sh.slot)] += p[x] * sh.weight;
                slot_load[sh.slot] += k * p[x] * sh.weight / sources;
              }
            } else {
              const float weight = 1.0f / static_cast<float>(replicas.size());
              for (int32_t slot : replicas) {
                per_gpu[placement.GpuOfSlot(slot)] += p[x] * weight;
                slot_load[slot] += k * p[x] * weight / sources;
              }
            }
          } else {
            const double each = p[x] / static_cast<double>(replicas.size());
            for (int32_t slot : replicas) {
              per_gpu[placement.GpuOfSlot(slot)] += each;
              slot_load[slot] += k * each / sources;
            }
          }
        }
        const size_t row = static_cast<size_t>(row_of_[static_cast<size_t>(r) * classes_ + c]);
        const size_t base = (row * layers_ + l) * gpus_;
        for (int g = 0; g < gpus_; ++g) {
          share_[base + g] = per_gpu[g];
          // A token's k experts are distinct; treat picks as independent draws of GPUs.
          reach_[base + g] = 1.0 - std::pow(std::max(0.0, 1.0 - per_gpu[g]), k);
        }
        shared_done = shared_done || !own_route;
        for (int n = 0; n < nodes_; ++n) {
          double node_share = 0;
          for (int g = n * gpus_per_node_; g < std::min(gpus_, (n + 1) * gpus_per_node_); ++g) {
            node_share += per_gpu[g];
          }
          if (!own_route) shared_node[n] = node_share;
          reach_node_[(row * layers_ + l) * nodes_ + n] =
              1.0 - std::pow(std::max(0.0, 1.0 - node_share), k);
          if (n == own_node) {
            node_locality_[static_cast<size_t>(r) * classes_ + c] +=
                std::min(1.0, node_share) / layers_;
          }
        }
      }
    }
  }
}

}  // namespace gimbal::sim
