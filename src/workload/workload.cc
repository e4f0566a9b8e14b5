// BuildWorkload, spec validation and names.
#include "workload/workload.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "workload/workload_internal.h"

namespace gimbal {
namespace internal {

Status CheckLengthDist(const LengthDist& d, const char* name) {
  auto bad = [&](const std::string& what) {
    return InvalidArgument(
        fmt::format("workload.{}: {} distribution: {}", name, LengthDistKindName(d.kind), what));
  };
  if (d.min < 1) return bad(fmt::format("min must be >= 1, got {}", d.min));
  if (d.min > d.max) return bad(fmt::format("min {} is greater than max {}", d.min, d.max));
  if (d.max > kMaxRequestTokens) {
    return bad(fmt::format("max must be <= {} tokens, got {}", kMaxRequestTokens, d.max));
  }
  switch (d.kind) {
    case LengthDist::Kind::kFixed:
      if (!(d.mean >= 1) || !std::isfinite(d.mean))
        return bad(fmt::format("value must be >= 1, got {}", d.mean));
      break;
    case LengthDist::Kind::kUniform:
      if (!(d.low >= 0) || !std::isfinite(d.high) || !(d.low <= d.high)) {
        return bad(fmt::format("expected 0 <= low <= high, got low {} and high {}", d.low, d.high));
      }
      if (d.high > 0x1.0p62) return bad(fmt::format("high {} is too large", d.high));
      break;
    case LengthDist::Kind::kNormal:
      if (!(d.mean > 0) || !std::isfinite(d.mean))
        return bad(fmt::format("mean must be > 0, got {}", d.mean));
      if (!(d.stddev >= 0) || !std::isfinite(d.stddev))
        return bad(fmt::format("stddev must be >= 0, got {}", d.stddev));
      break;
    case LengthDist::Kind::kLogNormal:
      if (!(d.mean > 0) || !std::isfinite(d.mean))
        return bad(fmt::format("mean must be > 0, got {}", d.mean));
      if (!(d.sigma >= 0) || !(d.sigma <= 10))
        return bad(fmt::format("sigma must be in [0, 10], got {}", d.sigma));
      break;
    case LengthDist::Kind::kPareto:
      if (!(d.mean > 0) || !std::isfinite(d.mean))
        return bad(fmt::format("mean must be > 0, got {}", d.mean));
      if (!(d.alpha > 1) || !std::isfinite(d.alpha)) {
        return bad(fmt::format("alpha must be > 1 (a finite mean), got {}", d.alpha));
      }
      break;
  }
  return Status::Ok();
}

}  // namespace internal
namespace {

using internal::CheckLengthDist;

// +inf, or a finite rate in [kMinRate, kMaxRate]; NaN not.
bool ValidRate(double r) {
  return (std::isinf(r) && r > 0) || (r >= kMinRate && r <= kMaxRate);
}

std::string RateRange() {
  return fmt::format("inf or a number of requests per second in [{}, {}]", kMinRate, kMaxRate);
}

}  // namespace

namespace internal {

Status CheckTraceOptions(const WorkloadSpec& spec) {
  if (!(spec.time_scale >= kMinTimeScale && spec.time_scale <= kMaxTimeScale)) {
    return InvalidArgument(fmt::format("workload.time_scale: expected a number in [{}, {}], got {}",
                                       kMinTimeScale, kMaxTimeScale, spec.time_scale));
  }
  if (!(spec.start_offset >= 0) || !std::isfinite(spec.start_offset)) {
    return InvalidArgument(
        fmt::format("workload.start_offset: expected a number >= 0, got {}", spec.start_offset));
  }
  if (spec.max_requests < 0 || spec.max_requests > kMaxWorkloadRequests) {
    return InvalidArgument(
        fmt::format("workload.max_requests: expected an integer in [0, {}], got {}",
                    kMaxWorkloadRequests, spec.max_requests));
  }
  return Status::Ok();
}

}  // namespace internal

const char* WorkloadKindName(WorkloadSpec::Kind kind) {
  switch (kind) {
    case WorkloadSpec::Kind::kSynthetic:
      return "synthetic";
    case WorkloadSpec::Kind::kAzure:
      return "azure";
    case WorkloadSpec::Kind::kMooncake:
      return "mooncake";
    case WorkloadSpec::Kind::kBurstGpt:
      return "burstgpt";
    case WorkloadSpec::Kind::kMultiTurn:
      return "multiturn";
    case WorkloadSpec::Kind::kAgentic:
      return "agentic";
  }
  return "?";
}

const char* LengthDistKindName(LengthDist::Kind kind) {
  switch (kind) {
    case LengthDist::Kind::kFixed:
      return "fixed";
    case LengthDist::Kind::kUniform:
      return "uniform";
    case LengthDist::Kind::kNormal:
      return "normal";
    case LengthDist::Kind::kLogNormal:
      return "lognormal";
    case LengthDist::Kind::kPareto:
      return "pareto";
  }
  return "?";
}

Status ValidateWorkloadSpec(const WorkloadSpec& spec) {
  if (spec.max_tokens < 0 || spec.max_tokens > kMaxRequestTokens) {
    return InvalidArgument(fmt::format(
        "workload.max_tokens: expected an integer in [1, {}] (or leave it out: each request's "
        "output length), got {}",
        kMaxRequestTokens, spec.max_tokens));
  }
  if (spec.prefix_hash_tokens < 0 || spec.prefix_hash_tokens > kMaxPrefixHashTokens) {
    return InvalidArgument(
        fmt::format("workload.prefix_hash_tokens: expected an integer in [1, {}] (or 0: the kind's "
                    "default), got {}",
                    kMaxPrefixHashTokens, spec.prefix_hash_tokens));
  }
  const bool sessions =
      spec.kind == WorkloadSpec::Kind::kMultiTurn || spec.kind == WorkloadSpec::Kind::kAgentic;
  if (spec.prefix_hash_tokens != 0 && !sessions && spec.kind != WorkloadSpec::Kind::kMooncake) {
    return InvalidArgument(
        fmt::format("workload.prefix_hash_tokens: applies only to kinds mooncake, multiturn and "
                    "agentic, not {}",
                    WorkloadKindName(spec.kind)));
  }
  if (spec.kind == WorkloadSpec::Kind::kSynthetic || sessions) {
    if (!sessions && (spec.num_requests < 0 || spec.num_requests > kMaxWorkloadRequests)) {
      return InvalidArgument(
          fmt::format("workload.num_requests: expected an integer in [0, {}], got {}",
                      kMaxWorkloadRequests, spec.num_requests));
    }
    if (!ValidRate(spec.rate)) {
      return InvalidArgument(
          fmt::format("workload.rate: expected {}, got {}", RateRange(), spec.rate));
    }
    if (!(spec.burstiness >= kMinBurstiness && spec.burstiness <= kMaxBurstiness)) {
      return InvalidArgument(
          fmt::format("workload.burstiness: expected a number in [{}, {}], got {}", kMinBurstiness,
                      kMaxBurstiness, spec.burstiness));
    }
    for (size_t i = 0; i < spec.schedule.size(); ++i) {
      const RatePhase& p = spec.schedule[i];
      if (!ValidRate(p.rate)) {
        return InvalidArgument(
            fmt::format("workload.schedule[{}].rate: expected {}, got {}", i, RateRange(), p.rate));
      }
      if (i == 0 && p.start != 0) {
        return InvalidArgument(fmt::format(
            "workload.schedule[0].start: the first phase must start at 0, got {}", p.start));
      }
      if (i > 0 && !(p.start > spec.schedule[i - 1].start)) {
        return InvalidArgument(
            fmt::format("workload.schedule[{}].start: phases must be sorted by strictly increasing "
                        "start, got {} after {}",
                        i, p.start, spec.schedule[i - 1].start));
      }
      if (!(p.start <= kMaxWorkloadSpanS)) {
        return InvalidArgument(
            fmt::format("workload.schedule[{}].start: expected a number of seconds <= {}, got {}",
                        i, kMaxWorkloadSpanS, p.start));
      }
    }
    if (sessions) return internal::CheckSessionSpec(spec);
    GIMBAL_RETURN_IF_ERROR(CheckLengthDist(spec.prompt, "prompt"));
    GIMBAL_RETURN_IF_ERROR(CheckLengthDist(spec.output, "output"));
    if (spec.sessions < 0) {
      return InvalidArgument(
          fmt::format("workload.sessions: expected an integer >= 0, got {}", spec.sessions));
    }
    const double span = ExpectedSyntheticSpan(spec);
    if (!(span <= kMaxWorkloadSpanS)) {
      return InvalidArgument(fmt::format(
          "workload.num_requests: {} requests at the given rate arrive over about {:.3g} s, more "
          "than the {:.3g} s (366 days) a workload may span; raise the rate or lower num_requests",
          spec.num_requests, span, kMaxWorkloadSpanS));
    }
    return Status::Ok();
  }
  if (spec.path.empty()) {
    return InvalidArgument(
        fmt::format("workload.path: required for kind {}", WorkloadKindName(spec.kind)));
  }
  return internal::CheckTraceOptions(spec);
}

Result<std::vector<Request>> BuildWorkload(const WorkloadSpec& spec,
                                           const std::vector<double>& class_weights, Rng& rng) {
  GIMBAL_RETURN_IF_ERROR(ValidateWorkloadSpec(spec));
  GIMBAL_RETURN_IF_ERROR(internal::CheckClassWeights(class_weights));
  Result<std::vector<Request>> out = Internal("unknown workload kind");
  switch (spec.kind) {
    case WorkloadSpec::Kind::kSynthetic:
      out = internal::BuildSynthetic(spec, class_weights, rng);
      break;
    case WorkloadSpec::Kind::kAzure:
      out = ReadAzureTrace(spec.path, spec, class_weights, rng);
      break;
    case WorkloadSpec::Kind::kMooncake:
      out = ReadMooncakeTrace(spec.path, spec, class_weights, rng);
      break;
    case WorkloadSpec::Kind::kBurstGpt:
      out = ReadBurstGptTrace(spec.path, spec, class_weights, rng);
      break;
    case WorkloadSpec::Kind::kMultiTurn:
    case WorkloadSpec::Kind::kAgentic:
      out = internal::BuildSessionRequests(spec, class_weights, rng);
      break;
  }
  if (!out.ok()) return out;
  for (Request& r : *out) {
    if (spec.max_tokens > 0) r.output_tokens = std::min(r.output_tokens, spec.max_tokens);
    r.max_tokens = spec.max_tokens > 0 ? spec.max_tokens : r.output_tokens;
  }
  return out;
}

}  // namespace gimbal
