#include "sim/expert_routing.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
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
      nodes_((placement.gpus + gpus_per_node_ - 1) / gpus_per_node_),
      top_k_(pop.top_k()) {
  Rebuild(pop, placement);
}

namespace {

// Whether layer l of `a` and `b` (same shape) holds the same experts in the same slots and gives
// every source the same routes (slots and weights bit for bit).
bool SameLayer(const Placement& a, const Placement& b, int l) {
  const size_t n = static_cast<size_t>(a.slots());
  const auto a_slots = a.phy2log.begin() + static_cast<ptrdiff_t>(l * n);
  if (!std::equal(a_slots, a_slots + static_cast<ptrdiff_t>(n),
                  b.phy2log.begin() + static_cast<ptrdiff_t>(l * n))) {
    return false;
  }
  if (a.source_routes.empty()) return true;
  const size_t per_layer = static_cast<size_t>(a.sources) * a.experts;
  for (size_t i = l * per_layer; i < (l + 1) * per_layer; ++i) {
    const std::span<const SlotShare> ra = a.source_routes[i];
    const std::span<const SlotShare> rb = b.source_routes[i];
    if (!std::equal(ra.begin(), ra.end(), rb.begin(), rb.end(),
                    [](const SlotShare& x, const SlotShare& y) {
                      return x.slot == y.slot &&
                             std::bit_cast<uint32_t>(x.weight) == std::bit_cast<uint32_t>(y.weight);
                    })) {
      return false;
    }
  }
  return true;
}

double ReachValue(double share, int k) {
  return 1.0 - std::pow(std::max(0.0, 1.0 - share), k);
}

}  // namespace

void RoutingTables::Rebuild(const ExpertPopularity& pop, const Placement& placement,
                            const Placement* previous) {
  GIMBAL_CHECK(placement.layers == pop.layers() && placement.experts == pop.experts(),
               "placement shape does not match the model");
  GIMBAL_CHECK(pop.classes() == classes_ && pop.layers() == layers_ && pop.top_k() == top_k_ &&
                   placement.gpus == gpus_ && placement.slots_per_gpu == slots_per_gpu_,
               "RoutingTables::Rebuild: the popularity or the placement has another shape");
  const bool routed = !placement.source_routes.empty();
  // A source the placement routes has rows of its own; the others route every token alike (over
  // all replicas evenly), so one row per class serves them all.
  const bool same_rows = built_pop_ != nullptr && routed == built_routed_ &&
                         (!routed || placement.sources == built_sources_);
  const bool keep = same_rows && previous != nullptr && built_pop_ == &pop &&
                    built_epoch_ == pop.epoch() && previous->layers == layers_ &&
                    previous->experts == placement.experts && previous->gpus == gpus_ &&
                    previous->slots_per_gpu == slots_per_gpu_ &&
                    previous->source_routes.empty() == !routed &&
                    (!routed || previous->sources == placement.sources);
  if (!same_rows) {
    row_of_.resize(static_cast<size_t>(sources_) * classes_);
    int32_t rows = classes_;  // rows 0..classes-1: the sources without routes
    for (int r = 0; r < sources_; ++r) {
      for (int c = 0; c < classes_; ++c) {
        row_of_[static_cast<size_t>(r) * classes_ + c] =
            routed && r < placement.sources ? rows++ : c;
      }
    }
    share_.assign(static_cast<size_t>(rows) * layers_ * gpus_, 0);
    reach_.assign(share_.size(), 0);
    reach_node_.assign(static_cast<size_t>(rows) * layers_ * nodes_, 0);
    slot_load_.assign(static_cast<size_t>(classes_) * layers_ * slots_, 0);
    node_term_.assign(static_cast<size_t>(sources_) * classes_ * layers_, 0);
    node_locality_.assign(static_cast<size_t>(sources_) * classes_, 0);
  }
  if (gpu_of_slot_.empty()) {
    gpu_of_slot_.resize(slots_);
    for (int s = 0; s < slots_; ++s) gpu_of_slot_[s] = placement.GpuOfSlot(s);
    const size_t entries = static_cast<size_t>(gpus_ + nodes_) * kCacheWays;
    cache_key_.assign(entries, std::bit_cast<uint64_t>(0.0));
    cache_value_.assign(entries, ReachValue(0.0, top_k_));
    cache_next_.assign(static_cast<size_t>(gpus_ + nodes_), 0);
  }
  for (int l = 0; l < layers_; ++l) {
    if (!keep || !SameLayer(*previous, placement, l)) BuildLayer(pop, placement, l);
  }
  // Each (source, class)'s locality: its layers' terms summed in layer order.
  for (size_t rc = 0; rc < node_locality_.size(); ++rc) {
    const double* term = node_term_.data() + rc * layers_;
    double sum = 0;
    for (int l = 0; l < layers_; ++l) sum += term[l];
    node_locality_[rc] = sum;
  }
  // Each (source, class)'s reach over its own node's GPUs, in one run (shared by the sources
  // of a node that read the same row).
  if (nodes_ > 1) {
    const size_t rows = share_.size() / (static_cast<size_t>(layers_) * gpus_);
    own_reach_of_.assign(rows * nodes_, -1);
    own_reach_.clear();
    own_reach_at_.resize(static_cast<size_t>(sources_) * classes_);
    for (int r = 0; r < sources_; ++r) {
      const int node =
          static_cast<int>(static_cast<int64_t>(r) * gpus_ / sources_) / gpus_per_node_;
      const int first = node * gpus_per_node_;
      const int width = std::min(gpus_, first + gpus_per_node_) - first;
      for (int c = 0; c < classes_; ++c) {
        const size_t row = static_cast<size_t>(row_of_[static_cast<size_t>(r) * classes_ + c]);
        int64_t& at = own_reach_of_[row * nodes_ + node];
        if (at < 0) {
          at = static_cast<int64_t>(own_reach_.size());
          for (int l = 0; l < layers_; ++l) {
            const double* from = reach_.data() + (row * layers_ + l) * gpus_ + first;
            own_reach_.insert(own_reach_.end(), from, from + width);
          }
        }
        own_reach_at_[static_cast<size_t>(r) * classes_ + c] = {
            static_cast<size_t>(at), static_cast<size_t>(layers_) * width};
      }
    }
  }
  built_pop_ = &pop;
  built_epoch_ = pop.epoch();
  built_routed_ = routed;
  built_sources_ = placement.sources;
}

double RoutingTables::ReachOf(double x, int i) {
  const uint64_t key = std::bit_cast<uint64_t>(x);
  uint64_t* keys = cache_key_.data() + static_cast<size_t>(i) * kCacheWays;
  double* values = cache_value_.data() + static_cast<size_t>(i) * kCacheWays;
  for (int w = 0; w < kCacheWays; ++w) {
    if (keys[w] == key) return values[w];
  }
  const double v = ReachValue(x, top_k_);
  uint8_t& next = cache_next_[i];
  keys[next] = key;
  values[next] = v;
  next = static_cast<uint8_t>((next + 1) % kCacheWays);
  return v;
}

void RoutingTables::BuildLayer(const ExpertPopularity& pop, const Placement& placement, int l) {
  const int experts = placement.experts;
  const int k = top_k_;
  const int sources = sources_;
  // Sources [0, own) have rows of their own (the placement routes them); the rest share a row.
  const int own = placement.source_routes.empty() ? 0 : std::min(sources, placement.sources);
  // The layer's replicas of each expert, ascending (Placement::Log2Phy's order).
  rep_begin_.assign(static_cast<size_t>(experts) + 1, 0);
  for (int s = 0; s < slots_; ++s) ++rep_begin_[placement.Expert(l, s) + 1];
  for (int x = 0; x < experts; ++x) rep_begin_[x + 1] += rep_begin_[x];
  rep_slots_.resize(slots_);
  entry_begin_.assign(rep_begin_.begin(), rep_begin_.end() - 1);  // fill positions, for now
  for (int s = 0; s < slots_; ++s) rep_slots_[entry_begin_[placement.Expert(l, s)]++] = s;
  // The routed sources' routes as one list: each expert's route, or when that is empty an even
  // split over its replicas at float weights, as Placement::Route gives.
  entries_.clear();
  entry_begin_.assign(static_cast<size_t>(own) + 1, 0);
  pair_expert_.clear();
  pair_weight_.clear();
  next_pair_.clear();
  first_pair_.assign(experts, -1);
  auto pair_of = [&](int x, float weight) {
    const uint32_t bits = std::bit_cast<uint32_t>(weight);
    for (int32_t i = first_pair_[x]; i >= 0; i = next_pair_[i]) {
      if (std::bit_cast<uint32_t>(pair_weight_[i]) == bits) return i;
    }
    const auto i = static_cast<int32_t>(pair_expert_.size());
    pair_expert_.push_back(x);
    pair_weight_.push_back(weight);
    next_pair_.push_back(first_pair_[x]);
    first_pair_[x] = i;
    return i;
  };
  for (int r = 0; r < own; ++r) {
    entry_begin_[r] = static_cast<int32_t>(entries_.size());
    const size_t first = (static_cast<size_t>(l) * placement.sources + r) * placement.experts;
    for (int x = 0; x < experts; ++x) {
      const std::span<const SlotShare> route = placement.source_routes[first + x];
      if (!route.empty()) {
        for (const SlotShare& sh : route) {
          entries_.push_back({sh.slot, gpu_of_slot_[sh.slot], pair_of(x, sh.weight)});
        }
      } else {
        const float weight = 1.0f / static_cast<float>(rep_begin_[x + 1] - rep_begin_[x]);
        const int32_t pair = pair_of(x, weight);
        for (int32_t i = rep_begin_[x]; i < rep_begin_[x + 1]; ++i) {
          entries_.push_back({rep_slots_[i], gpu_of_slot_[rep_slots_[i]], pair});
        }
      }
    }
  }
  entry_begin_[own] = static_cast<int32_t>(entries_.size());
  // A routed source whose list equals an earlier one's (bit for bit) has the same share, reach
  // and node shares in every class: it copies them from the first source with that list.
  static_assert(sizeof(Entry) == 3 * sizeof(int32_t), "entries are compared byte for byte");
  same_as_.resize(own);
  list_hash_.resize(own);
  for (int r = 0; r < own; ++r) {
    const Entry* begin = entries_.data() + entry_begin_[r];
    const size_t bytes = sizeof(Entry) * static_cast<size_t>(entry_begin_[r + 1] - entry_begin_[r]);
    uint64_t h = 0;  // the slot and the (expert, weight) pair determine an entry
    for (const Entry* e = begin; e != entries_.data() + entry_begin_[r + 1]; ++e) {
      h = (h ^ (static_cast<uint64_t>(static_cast<uint32_t>(e->slot)) << 32 |
                static_cast<uint32_t>(e->pair))) *
          0x9e3779b97f4a7c15ull;
    }
    list_hash_[r] = h;
    same_as_[r] = r;
    for (int q = 0; q < r; ++q) {
      if (same_as_[q] != q || list_hash_[q] != h ||
          entry_begin_[q + 1] - entry_begin_[q] != entry_begin_[r + 1] - entry_begin_[r] ||
          std::memcmp(entries_.data() + entry_begin_[q], begin, bytes) != 0) {
        continue;
      }
      same_as_[r] = q;
      break;
    }
  }

  per_gpu_.resize(gpus_);
  shared_node_.resize(nodes_);
  kp_.resize(experts);
  shared_term_.resize(experts);
  slot_term_.resize(slots_);
  pair_share_.resize(pair_expert_.size());
  pair_term_.resize(pair_expert_.size());
  source_node_.resize(static_cast<size_t>(own) * nodes_);
  for (int c = 0; c < classes_; ++c) {
    const auto p = pop.Row(c, l);
    double* slot_load = slot_load_.data() + (static_cast<size_t>(c) * layers_ + l) * slots_;
    std::fill(slot_load, slot_load + slots_, 0.0);
    // Every term below is the one the plain per-source walk over experts computes, and each
    // entry of slot_load, share_, reach_ and node_term_ takes its terms in that walk's order.
    for (int x = 0; x < experts; ++x) kp_[x] = k * p[x];
    for (size_t i = 0; i < pair_expert_.size(); ++i) {
      const int x = pair_expert_[i];
      pair_share_[i] = p[x] * pair_weight_[i];
      pair_term_[i] = kp_[x] * pair_weight_[i] / sources;
    }
    if (own < sources) {
      for (int x = 0; x < experts; ++x) {
        const double each = p[x] / static_cast<double>(rep_begin_[x + 1] - rep_begin_[x]);
        shared_term_[x] = k * each / sources;
      }
      for (int s = 0; s < slots_; ++s) slot_term_[s] = shared_term_[placement.Expert(l, s)];
    }
    bool shared_done = false;  // the row of the sources without routes is filled
    for (int r = 0; r < sources; ++r) {
      const int own_node =
          static_cast<int>(static_cast<int64_t>(r) * gpus_ / sources) / gpus_per_node_;
      const bool own_route = r < own;
      double& term = node_term_[(static_cast<size_t>(r) * classes_ + c) * layers_ + l];
      if (!own_route) {
        // Each slot's share of the source's pairs: one term per slot.
        for (int s = 0; s < slots_; ++s) slot_load[s] += slot_term_[s];
        if (shared_done) {
          // Same row as the first such source: only its own node's locality remains.
          term = std::min(1.0, shared_node_[own_node]) / layers_;
          continue;
        }
      }
      const size_t row = static_cast<size_t>(row_of_[static_cast<size_t>(r) * classes_ + c]);
      const size_t base = (row * layers_ + l) * gpus_;
      const size_t node_base = (row * layers_ + l) * nodes_;
      if (own_route) {
        for (int32_t i = entry_begin_[r]; i < entry_begin_[r + 1]; ++i) {
          slot_load[entries_[i].slot] += pair_term_[entries_[i].pair];
        }
        const int q = same_as_[r];
        if (q != r) {
          const size_t from = static_cast<size_t>(row_of_[static_cast<size_t>(q) * classes_ + c]);
          const size_t from_base = (from * layers_ + l) * gpus_;
          std::copy_n(share_.data() + from_base, gpus_, share_.data() + base);
          std::copy_n(reach_.data() + from_base, gpus_, reach_.data() + base);
          std::copy_n(reach_node_.data() + (from * layers_ + l) * nodes_, nodes_,
                      reach_node_.data() + node_base);
          term = std::min(1.0, source_node_[static_cast<size_t>(q) * nodes_ + own_node]) / layers_;
          continue;
        }
      }
      std::fill(per_gpu_.begin(), per_gpu_.end(), 0.0);
      double* per_gpu = per_gpu_.data();
      if (own_route) {
        for (int32_t i = entry_begin_[r]; i < entry_begin_[r + 1]; ++i) {
          per_gpu[entries_[i].gpu] += pair_share_[entries_[i].pair];
        }
      } else {
        for (int x = 0; x < experts; ++x) {
          const double each = p[x] / static_cast<double>(rep_begin_[x + 1] - rep_begin_[x]);
          for (int32_t i = rep_begin_[x]; i < rep_begin_[x + 1]; ++i) {
            per_gpu[gpu_of_slot_[rep_slots_[i]]] += each;
          }
        }
      }
      for (int g = 0; g < gpus_; ++g) {
        share_[base + g] = per_gpu[g];
        // A token's k experts are distinct; treat picks as independent draws of GPUs.
        reach_[base + g] = ReachOf(per_gpu[g], g);
      }
      shared_done = shared_done || !own_route;
      for (int n = 0; n < nodes_; ++n) {
        double node_share = 0;
        for (int g = n * gpus_per_node_; g < std::min(gpus_, (n + 1) * gpus_per_node_); ++g) {
          node_share += per_gpu[g];
        }
        if (own_route) {
          source_node_[static_cast<size_t>(r) * nodes_ + n] = node_share;
        } else {
          shared_node_[n] = node_share;
        }
        reach_node_[node_base + n] = ReachOf(node_share, gpus_ + n);
        if (n == own_node) term = std::min(1.0, node_share) / layers_;
      }
    }
  }
}

}  // namespace gimbal::sim
