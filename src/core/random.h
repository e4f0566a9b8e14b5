// Rng: a small, fast, portable random stream (xoshiro256**, seeded by splitmix64).
//
// Every random draw in Gimbal goes through an Rng passed in by the caller, so a run is a pure
// function of its seed. The distributions are written here rather than taken from <random>,
// whose distribution algorithms differ between standard libraries: the same seed gives the same
// numbers on every machine and compiler.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gimbal {

class Rng {
 public:
  explicit Rng(uint64_t seed = 1);

  // An independent stream derived from this generator's seed and `stream_id`; does not advance
  // this generator. Use one stream per consumer so adding draws in one place does not perturb
  // another.
  Rng Fork(uint64_t stream_id) const;

  uint64_t NextU64();
  // Uniform in [0, 1).
  double Uniform();
  // Uniform integer in [0, n). n > 0.
  uint64_t UniformInt(uint64_t n);
  // Exponential with the given rate (> 0).
  double Exponential(double rate);
  // Standard normal (Box–Muller, no cached second value).
  double Normal();
  // Gamma with shape k > 0 and scale theta > 0 (Marsaglia–Tsang).
  double Gamma(double shape, double scale);
  // exp(Normal(mu, sigma)).
  double LogNormal(double mu, double sigma);

 private:
  uint64_t seed_;
  uint64_t s_[4];
};

// Samples indices in O(1) from a fixed discrete distribution (Walker's alias method).
class AliasTable {
 public:
  AliasTable() = default;
  // weights: non-negative, not all zero.
  explicit AliasTable(std::span<const double> weights);
  size_t Sample(Rng& rng) const;
  size_t size() const { return prob_.size(); }

 private:
  std::vector<double> prob_;
  std::vector<uint32_t> alias_;
};

// Zipf-like weights 1/(i+1)^s for i in [0, n), normalised to sum 1.
std::vector<double> ZipfWeights(size_t n, double s);

}  // namespace gimbal
