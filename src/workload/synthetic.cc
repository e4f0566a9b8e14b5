// Synthetic workloads: Gamma arrivals as in `vllm bench serve`, length distributions, classes.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "workload/workload.h"
#include "workload/workload_internal.h"

namespace gimbal {
namespace {

// Streams derived from the caller's generator, one per concern, so that changing one draw
// sequence (say, the prompt distribution) leaves the others untouched.
enum Stream : uint64_t { kArrivals = 1, kPrompt, kOutput, kClass, kSession };

// The rate in force at time t: the last phase whose start is <= t.
double RateAt(const WorkloadSpec& spec, double t) {
  if (spec.schedule.empty()) return spec.rate;
  double rate = spec.schedule.front().rate;
  for (const RatePhase& p : spec.schedule) {
    if (p.start > t) break;
    rate = p.rate;
  }
  return rate;
}

}  // namespace

double ExpectedSyntheticSpan(const WorkloadSpec& spec) {
  double gaps = static_cast<double>(std::max<int64_t>(spec.num_requests - 1, 0));
  if (spec.schedule.empty()) return std::isinf(spec.rate) ? 0.0 : gaps / spec.rate;
  for (size_t i = 0; i < spec.schedule.size(); ++i) {
    const RatePhase& p = spec.schedule[i];
    if (std::isinf(p.rate)) return p.start;  // the rest arrive at once
    if (i + 1 == spec.schedule.size()) return p.start + gaps / p.rate;
    const double in_phase = p.rate * (spec.schedule[i + 1].start - p.start);
    if (in_phase >= gaps) return p.start + gaps / p.rate;
    gaps -= in_phase;
  }
  return 0;
}

int64_t LengthDist::Sample(Rng& rng) const {
  double x = mean;
  switch (kind) {
    case Kind::kFixed:
      break;
    case Kind::kUniform: {
      const int64_t lo = static_cast<int64_t>(std::llround(low));
      const int64_t hi = std::max(lo, static_cast<int64_t>(std::llround(high)));
      const auto offset = rng.UniformInt(static_cast<uint64_t>(hi - lo) + 1);
      x = static_cast<double>(lo + static_cast<int64_t>(offset));
      break;
    }
    case Kind::kNormal:
      x = mean + stddev * rng.Normal();
      break;
    case Kind::kLogNormal:
      // E[exp(N(mu, sigma))] = exp(mu + sigma^2 / 2) = mean.
      x = rng.LogNormal(std::log(mean) - sigma * sigma / 2, sigma);
      break;
    case Kind::kPareto: {
      // Pareto(x_m, alpha) has mean alpha x_m / (alpha - 1); inverse-CDF sampling with U in (0, 1].
      const double x_m = mean * (alpha - 1) / alpha;
      x = x_m / std::pow(1.0 - rng.Uniform(), 1.0 / alpha);
      break;
    }
  }
  const int64_t lo = std::max<int64_t>(1, min);
  const int64_t hi = std::max(lo, max);
  if (!(x >= static_cast<double>(lo))) return lo;  // also NaN
  if (x >= static_cast<double>(hi)) return hi;
  return std::clamp(static_cast<int64_t>(std::llround(x)), lo, hi);
}

std::vector<double> SyntheticArrivals(const WorkloadSpec& spec, int64_t n, Rng& rng) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(n, 0)));
  double t = 0;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(t);
    const double rate = RateAt(spec, t);
    if (std::isinf(rate)) continue;
    t += rng.Gamma(spec.burstiness, 1.0 / (rate * spec.burstiness));
  }
  return out;
}

namespace internal {

Status CheckClassWeights(const std::vector<double>& weights) {
  if (weights.empty()) return InvalidArgument("traffic class weights: none given");
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] >= 0) || !std::isfinite(weights[i])) {
      return InvalidArgument(fmt::format(
          "traffic class weights: weight {} is {}, expected a finite number >= 0", i, weights[i]));
    }
    sum += weights[i];
  }
  if (!(sum > 0)) return InvalidArgument("traffic class weights: all are zero");
  return Status::Ok();
}

Result<std::vector<Request>> BuildSynthetic(const WorkloadSpec& spec,
                                            const std::vector<double>& class_weights, Rng& rng) {
  const Rng base(rng.NextU64());
  Rng arrivals_rng = base.Fork(kArrivals);
  Rng prompt_rng = base.Fork(kPrompt);
  Rng output_rng = base.Fork(kOutput);
  Rng class_rng = base.Fork(kClass);
  Rng session_rng = base.Fork(kSession);
  const AliasTable classes(class_weights);
  const std::vector<double> arrivals = SyntheticArrivals(spec, spec.num_requests, arrivals_rng);
  std::vector<Request> out(arrivals.size());
  for (size_t i = 0; i < out.size(); ++i) {
    Request& r = out[i];
    r.id = static_cast<RequestId>(i);
    r.arrival = arrivals[i];
    r.prompt_tokens = spec.prompt.Sample(prompt_rng);
    r.output_tokens = spec.output.Sample(output_rng);
    r.traffic_class = static_cast<int32_t>(classes.Sample(class_rng));
    if (spec.sessions > 0) {
      r.affinity_key = 1 + session_rng.UniformInt(static_cast<uint64_t>(spec.sessions));
    }
  }
  return out;
}

}  // namespace internal
}  // namespace gimbal
