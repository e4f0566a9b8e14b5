#include "policy/placement/routing_stats.h"

#include <cmath>

#include <fmt/format.h>

namespace gimbal {

SourceExpertCounts SourceExpertCounts::Zeros(int layers, int sources, int experts) {
  SourceExpertCounts c;
  c.layers = layers;
  c.sources = sources;
  c.experts = experts;
  c.counts.assign(static_cast<size_t>(layers) * sources * experts, 0.0);
  return c;
}

std::vector<double> SourceExpertCounts::ExpertTotals() const {
  std::vector<double> out(static_cast<size_t>(layers) * experts, 0.0);
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < sources; ++s) {
      for (int x = 0; x < experts; ++x) out[static_cast<size_t>(l) * experts + x] += At(l, s, x);
    }
  }
  return out;
}

Status SourceExpertCounts::Validate() const {
  if (layers <= 0 || sources <= 0 || experts <= 0) {
    return InvalidArgument(fmt::format(
        "routing statistics: layers, sources and experts must be positive (got {}, {}, {})", layers,
        sources, experts));
  }
  const size_t want = static_cast<size_t>(layers) * sources * experts;
  if (counts.size() != want) {
    return InvalidArgument(fmt::format(
        "routing statistics: {} counts, expected {} layers x {} sources x {} experts = {}",
        counts.size(), layers, sources, experts, want));
  }
  // A count is valid when 0 <= v <= kMaxRoutingCount (NaN fails both comparisons, infinities one):
  // one pass without branches over all counts, and the pass below, which names the first bad
  // count, only when one is not.
  bool all_valid = true;
  for (const double v : counts) all_valid &= (v >= 0) & (v <= kMaxRoutingCount);
  if (all_valid) return Status::Ok();
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < sources; ++s) {
      for (int x = 0; x < experts; ++x) {
        const double v = At(l, s, x);
        if (!std::isfinite(v)) {
          return InvalidArgument(fmt::format(
              "routing statistics: count at layer {}, source {}, expert {} is not finite ({})", l,
              s, x, v));
        }
        if (v < 0) {
          return InvalidArgument(fmt::format(
              "routing statistics: count at layer {}, source {}, expert {} is negative ({})", l, s,
              x, v));
        }
        if (v > kMaxRoutingCount) {
          return InvalidArgument(fmt::format(
              "routing statistics: count at layer {}, source {}, expert {} (counts[{}][{}][{}]) is "
              "{}, more than the maximum {:g}",
              l, s, x, l, s, x, v, kMaxRoutingCount));
        }
      }
    }
  }
  return Status::Ok();
}

Status SourceExpertCounts::Merge(const SourceExpertCounts& other) {
  if (other.layers != layers || other.sources != sources || other.experts != experts ||
      other.counts.size() != counts.size()) {
    return InvalidArgument(
        fmt::format("routing statistics: cannot merge shape {}x{}x{} into {}x{}x{} (layers x "
                    "sources x experts)",
                    other.layers, other.sources, other.experts, layers, sources, experts));
  }
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  return Status::Ok();
}

RoutingStats::RoutingStats(int layers, int sources, int experts, RoutingStatsOptions options)
    : options_(options), total_(SourceExpertCounts::Zeros(layers, sources, experts)) {
  GIMBAL_CHECK(layers > 0 && sources > 0 && experts > 0, "RoutingStats: empty shape");
  GIMBAL_CHECK(options.mode != RoutingStatsOptions::Mode::kWindow || options.window_steps > 0,
               "RoutingStats: window_steps must be positive");
  GIMBAL_CHECK(options.mode != RoutingStatsOptions::Mode::kDecay ||
                   (options.decay > 0 && options.decay <= 1),
               "RoutingStats: decay must be in (0, 1]");
  open_.assign(total_.counts.size(), 0.0);
}

void RoutingStats::Add(int layer, int source, int expert, double tokens) {
  GIMBAL_CHECK(std::isfinite(tokens) && tokens >= 0, "RoutingStats::Add: bad token count");
  open_[total_.Index(layer, source, expert)] += tokens;
}

void RoutingStats::EndStep() {
  std::vector<double>& total = total_.counts;
  if (options_.mode == RoutingStatsOptions::Mode::kDecay) {
    for (size_t i = 0; i < total.size(); ++i) total[i] = options_.decay * total[i] + open_[i];
    std::fill(open_.begin(), open_.end(), 0.0);
  } else {
    const size_t n = static_cast<size_t>(options_.window_steps);
    if (ring_.size() < n) {
      for (size_t i = 0; i < total.size(); ++i) total[i] += open_[i];
      ring_.push_back(open_);
    } else {
      std::vector<double>& oldest = ring_[ring_head_];
      for (size_t i = 0; i < total.size(); ++i) {
        total[i] += open_[i] - oldest[i];
        if (total[i] < 0) total[i] = 0;  // rounding
      }
      oldest.swap(open_);
      ring_head_ = (ring_head_ + 1) % n;
    }
    open_.assign(total.size(), 0.0);
  }
  ++steps_;
}

Status RoutingStats::RecordStep(std::span<const double> step) {
  if (step.size() != open_.size()) {
    return InvalidArgument(fmt::format("routing statistics: step has {} counts, expected {}",
                                       step.size(), open_.size()));
  }
  for (size_t i = 0; i < step.size(); ++i) {
    if (!std::isfinite(step[i]) || step[i] < 0) {
      const size_t x = i % total_.experts;
      const size_t s = (i / total_.experts) % total_.sources;
      const size_t l = i / (static_cast<size_t>(total_.experts) * total_.sources);
      return InvalidArgument(fmt::format(
          "routing statistics: step count at layer {}, source {}, expert {} is {} (must be finite "
          "and >= 0)",
          l, s, x, step[i]));
    }
  }
  for (size_t i = 0; i < step.size(); ++i) open_[i] += step[i];
  EndStep();
  return Status::Ok();
}

Status RoutingStats::Merge(const RoutingStats& other) {
  if (other.total_.layers != total_.layers || other.total_.sources != total_.sources ||
      other.total_.experts != total_.experts) {
    return total_.Merge(other.total_);  // produces the shape message
  }
  if (other.options_.mode != options_.mode ||
      (options_.mode == RoutingStatsOptions::Mode::kWindow &&
       other.options_.window_steps != options_.window_steps) ||
      (options_.mode == RoutingStatsOptions::Mode::kDecay &&
       other.options_.decay != options_.decay)) {
    return InvalidArgument("routing statistics: cannot merge accumulators with different options");
  }
  if (options_.mode == RoutingStatsOptions::Mode::kDecay) {
    steps_ = std::max(steps_, other.steps_);
    return total_.Merge(other.total_);
  }
  // Windows: newest aligned with newest.
  auto ordered = [](const RoutingStats& r) {
    std::vector<const std::vector<double>*> v;
    for (size_t i = 0; i < r.ring_.size(); ++i)
      v.push_back(&r.ring_[(r.ring_head_ + i) % r.ring_.size()]);
    return v;
  };
  std::vector<const std::vector<double>*> a = ordered(*this), b = ordered(other);
  const size_t n = std::max(a.size(), b.size());
  std::vector<std::vector<double>> merged(n, std::vector<double>(open_.size(), 0.0));
  for (size_t k = 0; k < a.size(); ++k) {
    const std::vector<double>& src = *a[a.size() - 1 - k];
    std::vector<double>& dst = merged[n - 1 - k];
    for (size_t i = 0; i < src.size(); ++i) dst[i] += src[i];
  }
  for (size_t k = 0; k < b.size(); ++k) {
    const std::vector<double>& src = *b[b.size() - 1 - k];
    std::vector<double>& dst = merged[n - 1 - k];
    for (size_t i = 0; i < src.size(); ++i) dst[i] += src[i];
  }
  ring_ = std::move(merged);
  ring_head_ = 0;
  std::fill(total_.counts.begin(), total_.counts.end(), 0.0);
  for (const auto& st : ring_) {
    for (size_t i = 0; i < st.size(); ++i) total_.counts[i] += st[i];
  }
  steps_ = std::max(steps_, other.steps_);
  return Status::Ok();
}

}  // namespace gimbal
