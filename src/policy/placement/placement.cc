#include "policy/placement/placement.h"

#include <cmath>

#include <fmt/format.h>

namespace gimbal {

SourceRoutes::SourceRoutes(const std::vector<std::vector<SlotShare>>& routes) {
  size_t shares = 0;
  for (const auto& r : routes) shares += r.size();
  reserve(routes.size(), shares);
  for (const auto& r : routes) Append(r);
}

void SourceRoutes::Append(std::span<const SlotShare> route) {
  GIMBAL_CHECK(shares_.size() + route.size() <= UINT32_MAX, "too many route shares");
  shares_.insert(shares_.end(), route.begin(), route.end());
  ends_.push_back(static_cast<uint32_t>(shares_.size()));
}

std::span<SlotShare> SourceRoutes::AppendRoutes(std::span<const int32_t> lens) {
  const size_t first = shares_.size(), old = ends_.size();
  ends_.resize(old + lens.size());
  // Summed in 64 bits, a negative length seen by the OR of them all: one check per call.
  uint64_t end = first;
  int32_t any = 0;
  uint32_t* e = ends_.data() + old;
  for (const int32_t n : lens) {
    any |= n;
    end += static_cast<uint32_t>(n);
    *e++ = static_cast<uint32_t>(end);
  }
  GIMBAL_CHECK(any >= 0, "SourceRoutes::AppendRoutes: a negative route length");
  GIMBAL_CHECK(end <= UINT32_MAX, "too many route shares");
  shares_.resize(end);
  return {shares_.data() + first, static_cast<size_t>(end - first)};
}

void SourceRoutes::Append(const SourceRoutes& other) {
  if (&other == this) {
    const SourceRoutes copy = other;
    Append(copy);
    return;
  }
  GIMBAL_CHECK(shares_.size() + other.shares_.size() <= UINT32_MAX, "too many route shares");
  const auto base = static_cast<uint32_t>(shares_.size());
  shares_.insert(shares_.end(), other.shares_.begin(), other.shares_.end());
  ends_.reserve(ends_.size() + other.ends_.size());
  for (uint32_t e : other.ends_) ends_.push_back(base + e);
}

void SourceRoutes::Truncate(size_t n) {
  GIMBAL_CHECK(n <= size(), "SourceRoutes::Truncate past the end");
  ends_.resize(n);
  shares_.resize(n == 0 ? 0 : ends_.back());
}

std::vector<std::vector<SlotShare>> SourceRoutes::ToNested() const {
  std::vector<std::vector<SlotShare>> out(size());
  for (size_t i = 0; i < size(); ++i) out[i].assign((*this)[i].begin(), (*this)[i].end());
  return out;
}

Placement Placement::Contiguous(int layers, int experts, int gpus, int redundant_per_gpu) {
  GIMBAL_CHECK(gpus > 0 && experts % gpus == 0, "experts must divide evenly over GPUs");
  Placement p;
  p.layers = layers;
  p.experts = experts;
  p.gpus = gpus;
  const int base = experts / gpus;
  p.slots_per_gpu = base + redundant_per_gpu;
  p.phy2log.resize(static_cast<size_t>(layers) * p.slots());
  for (int l = 0; l < layers; ++l) {
    int extra = 0;
    for (int g = 0; g < gpus; ++g) {
      for (int i = 0; i < p.slots_per_gpu; ++i) {
        const int32_t x = i < base ? g * base + i : (extra++) % experts;
        p.phy2log[static_cast<size_t>(l) * p.slots() + g * p.slots_per_gpu + i] = x;
      }
    }
  }
  return p;
}

Status Placement::Validate() const {
  if (layers <= 0 || experts <= 0 || gpus <= 0 || slots_per_gpu <= 0) {
    return InvalidArgument(fmt::format(
        "placement: layers, experts, gpus and slots_per_gpu must be positive (got {}, {}, {}, {})",
        layers, experts, gpus, slots_per_gpu));
  }
  if (int64_t{gpus} * slots_per_gpu > kMaxSlots ||
      int64_t{layers} * gpus * slots_per_gpu > kMaxPlacementCells) {
    return InvalidArgument(fmt::format(
        "placement: {} layers x {} GPUs x {} slots per GPU is more than allowed ({} slots per "
        "layer, {} in all)",
        layers, gpus, slots_per_gpu, kMaxSlots, kMaxPlacementCells));
  }
  if (phy2log.size() != static_cast<size_t>(layers) * slots()) {
    return InvalidArgument(
        fmt::format("placement: phy2log has {} entries, expected {} layers x {} slots",
                    phy2log.size(), layers, slots()));
  }
  for (int l = 0; l < layers; ++l) {
    std::vector<int> count(experts, 0);
    for (int s = 0; s < slots(); ++s) {
      const int32_t x = Expert(l, s);
      if (x < 0 || x >= experts) {
        return InvalidArgument(fmt::format(
            "placement: layer {} slot {} holds expert {}, outside [0, {})", l, s, x, experts));
      }
      count[x]++;
    }
    for (int x = 0; x < experts; ++x) {
      if (count[x] == 0) {
        return InvalidArgument(fmt::format("placement: layer {} has no slot for expert {}", l, x));
      }
    }
  }
  if (!source_routes.empty()) {
    const size_t want = static_cast<size_t>(layers) * sources * experts;
    if (sources <= 0 || source_routes.size() != want) {
      return InvalidArgument(fmt::format("placement: source_routes has {} entries, expected {}",
                                         source_routes.size(), want));
    }
    for (size_t i = 0; i < want; ++i) {
      const int l = static_cast<int>(i / (static_cast<size_t>(sources) * experts));
      const int x = static_cast<int>(i % experts);
      if (source_routes[i].empty()) continue;  // the even split
      double sum = 0;
      for (const SlotShare& sh : source_routes[i]) {
        if (sh.slot < 0 || sh.slot >= slots() || Expert(l, sh.slot) != x || !(sh.weight >= 0)) {
          return InvalidArgument(fmt::format(
              "placement: route of layer {} expert {} names slot {} that does not hold it", l, x,
              sh.slot));
        }
        sum += sh.weight;
      }
      if (std::abs(sum - 1.0) > 1e-3) {
        return InvalidArgument(
            fmt::format("placement: route of layer {} expert {} sums to {}, not 1", l, x, sum));
      }
    }
  }
  return Status::Ok();
}

std::vector<std::vector<std::vector<int32_t>>> Placement::Log2Phy() const {
  std::vector<std::vector<std::vector<int32_t>>> out(layers,
                                                     std::vector<std::vector<int32_t>>(experts));
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < slots(); ++s) out[l][Expert(l, s)].push_back(s);
  }
  return out;
}

std::vector<SlotShare> Placement::Route(int layer, int source, int expert) const {
  if (!source_routes.empty()) {
    const std::span<const SlotShare> r =
        source_routes[(static_cast<size_t>(layer) * sources + source) * experts + expert];
    if (!r.empty()) return {r.begin(), r.end()};
  }
  std::vector<SlotShare> out;
  for (int s = 0; s < slots(); ++s) {
    if (Expert(layer, s) == expert) out.push_back({s, 0});
  }
  for (SlotShare& sh : out) sh.weight = 1.0f / static_cast<float>(out.size());
  return out;
}

}  // namespace gimbal
