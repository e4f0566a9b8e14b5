#include "core/stats.h"

#include <algorithm>
#include <cmath>

namespace gimbal {

double Mean(std::span<const double> xs) {
  if (xs.empty()) return 0;
  double s = 0;
  for (double x : xs) s += x;
  return s / static_cast<double>(xs.size());
}

double StdDev(std::span<const double> xs) {
  if (xs.size() < 2) return 0;
  const double m = Mean(xs);
  double s = 0;
  for (double x : xs) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(xs.size() - 1));
}

double PercentileSorted(std::span<const double> sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

double Percentile(std::span<const double> xs, double p) {
  std::vector<double> v(xs.begin(), xs.end());
  std::sort(v.begin(), v.end());
  return PercentileSorted(v, p);
}

double WeightedPercentile(std::vector<std::pair<double, double>>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  double total = 0;
  for (const auto& s : samples) total += s.second;
  if (total <= 0) return 0;
  const double target = std::clamp(p, 0.0, 100.0) / 100.0 * total;
  double acc = 0;
  for (const auto& s : samples) {
    acc += s.second;
    if (acc >= target && s.second > 0) return s.first;
  }
  return samples.back().first;
}

double WeightedMean(std::span<const std::pair<double, double>> samples) {
  double sw = 0;
  double s = 0;
  for (const auto& [v, w] : samples) {
    s += v * w;
    sw += w;
  }
  return sw > 0 ? s / sw : 0;
}

}  // namespace gimbal
