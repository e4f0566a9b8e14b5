#include "core/random.h"

#include <cmath>
#include <numbers>

#include "core/status.h"

namespace gimbal {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

Rng::Rng(uint64_t seed) : seed_(seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = SplitMix64(x);
}

Rng Rng::Fork(uint64_t stream_id) const {
  uint64_t x = seed_ ^ (0xd1b54a32d192ed03ULL * (stream_id + 1));
  return Rng(SplitMix64(x));
}

uint64_t Rng::NextU64() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() {
  return static_cast<double>(NextU64() >> 11) * 0x1.0p-53;
}

uint64_t Rng::UniformInt(uint64_t n) {
  GIMBAL_CHECK(n > 0, "UniformInt needs n > 0");
  // Rejection sampling on the largest multiple of n below 2^64, for exact uniformity.
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t x = NextU64();
    if (x >= threshold) return x % n;
  }
}

double Rng::Exponential(double rate) {
  return -std::log1p(-Uniform()) / rate;
}

double Rng::Normal() {
  const double u1 = 1.0 - Uniform();  // (0, 1]
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double Rng::Gamma(double shape, double scale) {
  GIMBAL_CHECK(shape > 0 && scale > 0, "Gamma needs positive shape and scale");
  if (shape < 1.0) {
    // Boost to shape + 1 and scale down by U^(1/shape).
    const double u = 1.0 - Uniform();
    return Gamma(shape + 1.0, scale) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x = 0;
    double v = 0;
    do {
      x = Normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = Uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
  }
}

double Rng::LogNormal(double mu, double sigma) {
  return std::exp(mu + sigma * Normal());
}

AliasTable::AliasTable(std::span<const double> weights) {
  const size_t n = weights.size();
  GIMBAL_CHECK(n > 0, "AliasTable needs weights");
  double sum = 0;
  for (double w : weights) {
    GIMBAL_CHECK(w >= 0 && std::isfinite(w), "AliasTable weights must be finite and >= 0");
    sum += w;
  }
  GIMBAL_CHECK(sum > 0, "AliasTable weights must not all be zero");
  prob_.assign(n, 0.0);
  alias_.assign(n, 0);
  std::vector<double> scaled(n);
  std::vector<uint32_t> small;
  std::vector<uint32_t> large;
  for (size_t i = 0; i < n; ++i) {
    scaled[i] = weights[i] * static_cast<double>(n) / sum;
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back();
    small.pop_back();
    const uint32_t l = large.back();
    prob_[s] = scaled[s];
    alias_[s] = l;
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  for (uint32_t i : large) prob_[i] = 1.0;
  for (uint32_t i : small) prob_[i] = 1.0;
}

size_t AliasTable::Sample(Rng& rng) const {
  const size_t i = rng.UniformInt(prob_.size());
  return rng.Uniform() < prob_[i] ? i : alias_[i];
}

std::vector<double> ZipfWeights(size_t n, double s) {
  std::vector<double> w(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    w[i] = 1.0 / std::pow(static_cast<double>(i + 1), s);
    sum += w[i];
  }
  for (double& x : w) x /= sum;
  return w;
}

}  // namespace gimbal
