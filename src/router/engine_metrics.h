// Turning what an engine publishes into an EngineSnapshot: its Prometheus page here, the state a
// gimbal engine pushes on /gimbal/state/stream in wire/engine_state.h (wire::SnapshotFromPushed).
//
// Reads vLLM's names: vllm:num_requests_waiting and vllm:num_requests_running (summed over the
// `engine` label, so one URL fronting several DP engines counts as one), vllm:kv_cache_usage_perc
// (vllm:gpu_cache_usage_perc before v0.10; the maximum over engines, since the fullest one
// preempts first), and vllm:cache_config_info's num_gpu_blocks × block_size for the KV capacity.
// Samples whose `model_name` label names another model are ignored. Gimbal's emulated engines
// also publish gimbal:prefill_pending_tokens.
//
// Engines are not trusted: the plausibility bounds, and the reading of a pushed state, are the
// engine-state protocol's (wire/engine_state.h). A field whose
// samples include an implausible value is dropped (it keeps the value it had in the previous
// snapshot) and the value is reported in wire::ValueWarnings, never converted.
#pragma once

#include <string>
#include <string_view>

#include "core/engine_state.h"
#include "net/prometheus_parser.h"
#include "wire/engine_state.h"

namespace gimbal::router {

// The snapshot `page` describes, taken `now`. On entry *out is the engine's previous snapshot (a
// default one when there is none): a field whose samples include an implausible value keeps its
// value from there; an absent field gets its default (0, prefill_pending_tokens -1). False, and
// *out untouched, when the page has no usable request count (not a vLLM page, or every
// request-count sample implausible). `warnings` (optional) is added to.
bool SnapshotFromMetrics(const net::PromParseResult& page, const std::string& model, double now,
                         EngineSnapshot* out, wire::ValueWarnings* warnings = nullptr);

// True for the metric names SnapshotFromMetrics reads: a scrape parses only these
// (net::ParsePrometheusText's `keep`).
bool EngineMetricRead(std::string_view name);

}  // namespace gimbal::router
