// Turning what an engine publishes into an EngineSnapshot: its Prometheus page, or the state JSON
// a gimbal engine pushes on /gimbal/state/stream.
//
// Reads vLLM's names: vllm:num_requests_waiting and vllm:num_requests_running (summed over the
// `engine` label, so one URL fronting several DP engines counts as one), vllm:kv_cache_usage_perc
// (vllm:gpu_cache_usage_perc before v0.10; the maximum over engines, since the fullest one
// preempts first), and vllm:cache_config_info's num_gpu_blocks × block_size for the KV capacity.
// Samples whose `model_name` label names another model are ignored. Gimbal's emulated engines
// also publish gimbal:prefill_pending_tokens.
//
// Engines are not trusted: a value no real engine can have — negative, NaN, ±Inf, a request count
// above kMaxEngineRequests, a token count above kMaxEngineTokens, a usage fraction outside [0, 1]
// by more than kUsageTolerance, a MoE pressure above kMaxMoePressure — is not a signal. The field
// it belongs to is dropped (it keeps the value it had in the previous snapshot) and the value is
// reported in ValueWarnings, never converted (no llround out of range).
#pragma once

#include <string>
#include <string_view>

#include "core/engine_state.h"
#include "net/prometheus_parser.h"

namespace gimbal::router {

inline constexpr double kMaxEngineRequests = 1e9;  // waiting, running
inline constexpr double kMaxEngineTokens = 1e12;   // KV capacity, prompt tokens pending
inline constexpr double kUsageTolerance = 0.01;    // kv_usage in [-tol, 1 + tol], then clamped
inline constexpr double kMaxMoePressure = 1e4;     // relative to the mean over GPUs

// Implausible values skipped while reading one page or state.
struct ValueWarnings {
  int count = 0;
  std::string first;  // the first one, e.g. "vllm:num_requests_waiting = -1e+308"
};

// The snapshot `page` describes, taken `now`. On entry *out is the engine's previous snapshot (a
// default one when there is none): a field whose samples include an implausible value keeps its
// value from there; an absent field gets its default (0, prefill_pending_tokens -1). False, and
// *out untouched, when the page has no usable request count (not a vLLM page, or every
// request-count sample implausible). `warnings` (optional) is added to.
bool SnapshotFromMetrics(const net::PromParseResult& page, const std::string& model, double now,
                         EngineSnapshot* out, ValueWarnings* warnings = nullptr);

// A gimbal engine's pushed state (one event's JSON, docs/emulator.md) as a snapshot taken `now`:
// the engine sends it right after each step and repeats it while nothing changes, so a state is
// current when it arrives. On entry *out and *moe_pressure hold the engine's previous values; an
// implausible field keeps its previous value, as above; a zero moe_pressure reads as 1 (average).
// False, and nothing touched, when `data` is not a JSON object with numbers `waiting`, `running`
// and `kv_usage`, or when neither request count is usable. `warnings` (optional) is added to.
bool SnapshotFromPushed(std::string_view data, double now, EngineSnapshot* out,
                        double* moe_pressure, ValueWarnings* warnings = nullptr);

}  // namespace gimbal::router
