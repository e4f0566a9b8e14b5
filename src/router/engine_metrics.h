// Turning an engine's Prometheus page into an EngineSnapshot.
//
// Reads vLLM's names: vllm:num_requests_waiting and vllm:num_requests_running (summed over the
// `engine` label, so one URL fronting several DP engines counts as one), vllm:kv_cache_usage_perc
// (vllm:gpu_cache_usage_perc before v0.10; the maximum over engines, since the fullest one
// preempts first), and vllm:cache_config_info's num_gpu_blocks × block_size for the KV capacity.
// Samples whose `model_name` label names another model are ignored. Gimbal's emulated engines
// also publish gimbal:prefill_pending_tokens.
#pragma once

#include <string>

#include "core/engine_state.h"
#include "net/prometheus_parser.h"

namespace gimbal::router {

// False when the page has none of the request-count metrics (not a vLLM page).
bool SnapshotFromMetrics(const net::PromParseResult& page, const std::string& model, double now,
                         EngineSnapshot* out);

}  // namespace gimbal::router
