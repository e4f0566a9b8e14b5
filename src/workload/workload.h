// Workloads: the requests a scenario replays, synthetic, from a trace, or sessions (multi-turn
// conversations and agentic tool loops that resend their history, sessions.h).
//
// A WorkloadSpec is parsed from a scenario's `workload:` map (schema in docs/workloads.md) and
// turned into requests sorted by arrival, with ids 0..n-1 in that order. Synthetic arrivals follow
// `vllm bench serve`: inter-arrival gaps are Gamma(shape = burstiness, scale = 1 / (rate ·
// burstiness)), so burstiness 1 is Poisson, < 1 burstier, > 1 more regular; an infinite rate sends
// everything at t = 0. A rate schedule makes the rate piecewise constant in time. Every request is
// given a traffic class drawn by the class weights passed in (trace readers may derive it instead,
// see each reader). Generation is deterministic for a given Rng: BuildWorkload draws one number
// from it and derives independent streams for arrivals, lengths, classes and sessions. Session
// kinds draw session arrivals the same way (rate in sessions per second); their requests carry
// prefix_hashes of PrefixHashTokens(spec) tokens each, which the engines must be told
// (EngineLimits::prefix_hash_tokens) for cache hits to be right.
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

// A distribution of durations in seconds, clamped to [0, max].
struct SecondsDist {
  enum class Kind { kFixed, kUniform, kExponential, kLogNormal };
  Kind kind = Kind::kFixed;
  double mean = 0;    // fixed value; mean for exponential and lognormal
  double sigma = 1;   // lognormal shape (of the underlying normal)
  double low = 0;     // uniform lower bound
  double high = 1;    // uniform upper bound
  double max = 3600;  // every draw is clamped to [0, max]
  double Sample(Rng& rng) const;
};

// Shared system prompts: `count` tenants (apps), each with one system prompt of a length drawn
// once from `tokens`; a session belongs to tenant i with probability proportional to
// 1 / (i + 1)^zipf (0 = uniform) and starts with that tenant's prompt. count 0 = none.
struct SystemPromptSpec {
  int64_t count = 0;
  LengthDist tokens;
  double zipf = 1;
};

// Multi-turn sessions (kinds multiturn and agentic; docs/workloads.md, "Sessions"). Sessions
// arrive by the WorkloadSpec's rate / schedule and burstiness (sessions per second). Each has
// `turns` turns; turn 1's prompt is [system prompt] + first_prompt; turn k+1's prompt is turn k's
// prompt + turn k's output + a new `message`. Turn k+1 arrives at turn k's arrival + an estimated
// service time (est_ttft_s + output tokens * est_tpot_s) + a think time: an open-loop
// approximation of a client that waits for each answer. A session ends early when a turn's prompt
// would exceed max_prompt tokens.
struct SessionSpec {
  int64_t num_sessions = 200;
  LengthDist turns;         // turns per session (integers >= 1)
  SecondsDist think_time;   // between one turn's estimated completion and the next turn
  LengthDist first_prompt;  // the first user message (after the system prompt)
  LengthDist message;       // each later turn's new user message (or tool result)
  SystemPromptSpec system_prompts;
  double est_ttft_s = 0.5;      // estimated time to first token, seconds (>= 0)
  double est_tpot_s = 0.03;     // estimated time per output token, seconds (>= 0)
  int64_t max_prompt = 131072;  // a session stops before a turn whose prompt exceeds this
};

struct RatePhase {
  double start = 0;  // seconds
  double rate = 1;   // requests per second (> 0, or +inf)
};

struct WorkloadSpec {
  enum class Kind { kSynthetic, kAzure, kMooncake, kBurstGpt, kMultiTurn, kAgentic };
  Kind kind = Kind::kSynthetic;
  // Synthetic (rate, burstiness and schedule also give session arrivals of multiturn / agentic;
  // output also gives their output lengths).
  int64_t num_requests = 1000;
  double rate = 10;       // requests per second; +inf (YAML .inf or "inf") for all at once
  double burstiness = 1;  // Gamma shape
  std::vector<RatePhase> schedule;  // overrides `rate` when non-empty; phases sorted by start
  LengthDist prompt;
  LengthDist output;
  int64_t sessions = 0;  // > 0: each request gets affinity_key = a session drawn uniformly
  // Multi-turn and agentic sessions (defaults: DefaultWorkloadSpec).
  SessionSpec session;
  // Prompt tokens each Request::prefix_hashes entry covers (EngineLimits::prefix_hash_tokens); 0 =
  // the kind's default, see PrefixHashTokens.
  int64_t prefix_hash_tokens = 0;
  // Traces.
  std::string path;          // resolved against the scenario file's directory
  double time_scale = 1;     // arrival times are multiplied by this (0.5 = twice the rate)
  int64_t max_requests = 0;  // 0 = all
  double start_offset = 0;   // skip requests before this many seconds into the trace
  // Every kind: the max_tokens each request's client sends (Request::max_tokens). 0 = its own
  // output length, as `vllm bench serve` sends; > 0 = this fixed cap, as chat clients send, and
  // output lengths above it are cut to it (an engine stops at max_tokens).
  int64_t max_tokens = 0;
};

// Bounds every workload respects, so that a mistyped or hostile value fails up front with a
// message instead of exhausting memory (a trillion requests) or time (a simulated clock that
// crawls to 1e12 s). Parsing, ValidateWorkloadSpec and the trace readers enforce them.
inline constexpr int64_t kMaxWorkloadRequests = 10'000'000;  // num_requests, max_requests
inline constexpr double kMinRate = 1e-3;                     // requests per second (finite rates)
inline constexpr double kMaxRate = 1e9;                      // above this, write inf
inline constexpr double kMinBurstiness = 1e-3;
inline constexpr double kMaxBurstiness = 1e3;
inline constexpr double kMinTimeScale = 1e-6;  // trace time_scale
inline constexpr double kMaxTimeScale = 1e6;
inline constexpr double kMaxWorkloadSpanS = 366 * 86400.0;      // arrivals span at most a year
inline constexpr int64_t kMaxRequestTokens = int64_t{1} << 30;  // prompt or output tokens
// Trace files: regular files only, at most this large, with lines at most this long.
inline constexpr int64_t kMaxTraceFileBytes = int64_t{8} << 30;
inline constexpr size_t kMaxTraceLineBytes = size_t{1} << 20;
inline constexpr int64_t kMaxTraceRows = 20'000'000;  // the largest public traces have ~5e6

// Tokens per prefix-hash entry: Mooncake's traces hash 512-token blocks; the session generators
// hash blocks of the engine's KV block size (16 by default), so each entry is one KV block.
inline constexpr int64_t kMooncakeHashBlockTokens = 512;
inline constexpr int64_t kSessionHashBlockTokens = 16;
inline constexpr int64_t kMaxPrefixHashTokens = int64_t{1} << 20;
inline constexpr int64_t kMaxSystemPrompts = 1'000'000;  // system_prompts.count
// Session workloads: at most this many prefix-hash entries in all (8 bytes each: 1 GiB).
inline constexpr int64_t kMaxSessionHashEntries = int64_t{1} << 27;

// A spec of `kind` with that kind's defaults (for multiturn and agentic: the published figures
// in docs/workloads.md; for the others, the WorkloadSpec member defaults).
WorkloadSpec DefaultWorkloadSpec(WorkloadSpec::Kind kind);

// How many prompt tokens each Request::prefix_hashes entry of `spec`'s requests covers, the value
// the engines must use as EngineLimits::prefix_hash_tokens for hits to be right: the spec's
// prefix_hash_tokens when > 0; else kMooncakeHashBlockTokens for mooncake,
// kSessionHashBlockTokens for multiturn and agentic; 0 (no hashes) for the other kinds.
int64_t PrefixHashTokens(const WorkloadSpec& spec);

// The ideal prefix-cache hit rate of `requests` taken in order (an infinite cache shared by all
// engines): for each request, the longest leading run of its prefix_hashes entries that appeared
// in an earlier request's prefix_hashes, times tokens_per_hash (capped at its prompt), summed and
// divided by the sum of prompt tokens. 0 when there are no prompt tokens. tokens_per_hash > 0.
double IdealPrefixHitRate(const std::vector<Request>& requests, int64_t tokens_per_hash);

// The expected time from the first arrival to the last of a synthetic spec's num_requests
// requests: num_requests / rate, or walked through the schedule's phases (0 with an infinite
// rate in force).
double ExpectedSyntheticSpan(const WorkloadSpec& spec);

const char* WorkloadKindName(WorkloadSpec::Kind kind);  // "synthetic", "azure", ...
const char* LengthDistKindName(LengthDist::Kind kind);  // "fixed", "uniform", ...

const char* SecondsDistKindName(SecondsDist::Kind kind);  // "fixed", "uniform", ...

// Reads a `workload:` map. `base_dir` resolves relative trace paths. Errors name the file, line
// and key; unknown keys and keys that do not apply to the chosen kind or dist are rejected.
Result<WorkloadSpec> ParseWorkloadSpec(const YamlReader& node, const std::string& base_dir);

// Checks the ranges a spec built in code must respect (ParseWorkloadSpec already enforces them):
// rates in [kMinRate, kMaxRate] or inf, burstiness in [kMinBurstiness, kMaxBurstiness], schedule
// starting at 0 and strictly increasing, 1 <= min <= max <= kMaxRequestTokens, max_tokens 0 or
// in [1, kMaxRequestTokens], at most
// kMaxWorkloadRequests requests over at most kMaxWorkloadSpanS, finite numbers, ...
Status ValidateWorkloadSpec(const WorkloadSpec& spec);

// Arrival times in seconds for `n` requests under `spec`'s rate (or schedule) and burstiness:
// the first at 0, then one Gamma gap after each, drawn with the rate of the phase containing the
// current time. An infinite rate gives gaps of 0. Non-decreasing.
std::vector<double> SyntheticArrivals(const WorkloadSpec& spec, int64_t n, Rng& rng);

// The random stream a run draws its workload from for `seed`: every place that builds a
// scenario's requests (gimbal simulate, gimbal experiment, gimbal bench) uses it, so the same seed
// gives the same requests in each.
inline Rng WorkloadRng(uint64_t seed) {
  return Rng(seed).Fork(0x3017);
}

// Builds the requests. `class_weights` (non-empty, >= 0, not all 0) gives the traffic-class mix.
// Trace kinds read `spec.path`. Every request gets max_tokens from `spec.max_tokens` (see there);
// the trace readers below leave it 0.
Result<std::vector<Request>> BuildWorkload(const WorkloadSpec& spec,
                                           const std::vector<double>& class_weights, Rng& rng);

// Trace readers. Each returns requests sorted by arrival (stable), with ids 0..n-1, arrival in
// seconds relative to the earliest row (the first, in a time-ordered trace). Rows earlier than
// spec.start_offset are skipped and the rest shifted by it; arrivals are then multiplied by
// spec.time_scale and at most spec.max_requests (0 = all) are kept. Token counts are clamped to
// >= 1. Classes are drawn from `class_weights` unless the reader says otherwise. A missing file
// is NotFound; a malformed row, a wrong header or an empty trace is InvalidArgument naming
// file:line, the column and what was expected. So is anything beyond the bounds above: a path
// that is not a regular file (a directory, /dev/zero, a pipe), a file over kMaxTraceFileBytes, a
// line over kMaxTraceLineBytes, more than kMaxTraceRows rows, a token count over
// kMaxRequestTokens, or arrivals spanning more than kMaxWorkloadSpanS after time_scale.
//
// Azure LLM inference CSV: header TIMESTAMP,ContextTokens,GeneratedTokens (any order, extra
// columns ignored); TIMESTAMP is "YYYY-MM-DD HH:MM:SS[.fraction]" (UTC).
Result<std::vector<Request>> ReadAzureTrace(const std::string& path, const WorkloadSpec& spec,
                                            const std::vector<double>& class_weights, Rng& rng);
// Mooncake JSONL: one object per line, {"timestamp": ms, "input_length": n, "output_length": n,
// "hash_ids": [...]} (hash_ids optional). prefix_hashes = hash_ids; affinity_key = first hash id
// + 1; the class is a deterministic function of the first hash id that follows `class_weights`
// over distinct prefixes (MooncakeClassForHash), so requests sharing a prefix share a class.
// Without hash_ids the class is drawn by weight and affinity_key is 0.
Result<std::vector<Request>> ReadMooncakeTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng);
// BurstGPT CSV: header Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type;
// Timestamp in seconds. Rows with 0 response tokens are failed requests and are skipped.
Result<std::vector<Request>> ReadBurstGptTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng);

// The traffic class of a prefix whose first block hash is `hash`: a hash of it mapped through
// the cumulative class weights. `weights` as for BuildWorkload.
int32_t MooncakeClassForHash(uint64_t hash, const std::vector<double>& weights);

}  // namespace gimbal
