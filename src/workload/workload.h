// Workloads: the requests a scenario replays, synthetic or from a trace.
//
// A WorkloadSpec is parsed from a scenario's `workload:` map (schema in docs/scenarios.md) and
// turned into requests sorted by arrival, with ids 0..n-1 in that order. Synthetic arrivals follow
// `vllm bench serve`: inter-arrival gaps are Gamma(shape = burstiness, scale = 1 / (rate ·
// burstiness)), so burstiness 1 is Poisson, < 1 burstier, > 1 more regular; an infinite rate sends
// everything at t = 0. A rate schedule makes the rate piecewise constant in time. Every request is
// given a traffic class drawn by the class weights passed in (trace readers may derive it instead,
// see each reader). Generation is deterministic for a given Rng.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/request.h"
#include "core/status.h"
#include "core/yaml_reader.h"

namespace gimbal {

// A distribution of token counts, clamped to [min, max] and rounded to integers >= 1.
struct LengthDist {
  enum class Kind { kFixed, kUniform, kNormal, kLogNormal, kPareto };
  Kind kind = Kind::kFixed;
  double mean = 512;   // fixed value; mean for normal, lognormal and pareto
  double stddev = 0;   // normal; lognormal uses sigma below
  double sigma = 1;    // lognormal shape (of the underlying normal)
  double alpha = 2;    // pareto tail index (> 1)
  double low = 1;      // uniform lower bound
  double high = 1024;  // uniform upper bound
  int64_t min = 1;
  int64_t max = 1 << 20;
  int64_t Sample(Rng& rng) const;
};

struct RatePhase {
  double start = 0;  // seconds
  double rate = 1;   // requests per second (> 0, or +inf)
};

struct WorkloadSpec {
  enum class Kind { kSynthetic, kAzure, kMooncake, kBurstGpt };
  Kind kind = Kind::kSynthetic;
  // Synthetic.
  int64_t num_requests = 1000;
  double rate = 10;        // requests per second; +inf (YAML .inf or "inf") for all at once
  double burstiness = 1;   // Gamma shape
  std::vector<RatePhase> schedule;  // overrides `rate` when non-empty; phases sorted by start
  LengthDist prompt;
  LengthDist output;
  int64_t sessions = 0;  // > 0: each request gets affinity_key = a session drawn uniformly
  // Traces.
  std::string path;          // resolved against the scenario file's directory
  double time_scale = 1;     // arrival times are multiplied by this (0.5 = twice the rate)
  int64_t max_requests = 0;  // 0 = all
  double start_offset = 0;   // skip requests before this many seconds into the trace
};

// Reads a `workload:` map. `base_dir` resolves relative trace paths.
Result<WorkloadSpec> ParseWorkloadSpec(const YamlReader& node, const std::string& base_dir);

// Builds the requests. `class_weights` (non-empty, >= 0, not all 0) gives the traffic-class mix.
Result<std::vector<Request>> BuildWorkload(const WorkloadSpec& spec,
                                           const std::vector<double>& class_weights, Rng& rng);

// Trace readers. Each returns requests sorted by arrival, arrival relative to the first row,
// classes drawn from `class_weights` unless the reader says otherwise. Errors name file and line.
Result<std::vector<Request>> ReadAzureTrace(const std::string& path, const WorkloadSpec& spec,
                                            const std::vector<double>& class_weights, Rng& rng);
Result<std::vector<Request>> ReadMooncakeTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng);
Result<std::vector<Request>> ReadBurstGptTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng);

}  // namespace gimbal
