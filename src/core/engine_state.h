// EngineSnapshot and EngineView: what a front end knows about one DP engine when it dispatches.
//
// A snapshot is what the engine last published (scraped /metrics, pushed state, or the
// simulator's sampling); it ages. The front end also keeps its own exact accounting of what it
// dispatched there. An EngineView joins the two plus the MoE pressure of the engine's GPU. Policies
// decide on a span of views and nothing else.
#pragma once

#include <cstdint>

namespace gimbal {

struct EngineSnapshot {
  int64_t waiting = 0;                  // requests queued, not yet admitted
  int64_t running = 0;                  // requests admitted (prefilling or decoding)
  double kv_usage = 0;                  // fraction of KV blocks in use, [0, 1]
  int64_t kv_capacity_tokens = 0;       // total KV capacity in tokens (0 when unknown)
  int64_t prefill_pending_tokens = -1;  // prompt tokens not yet prefilled; -1 when not reported
  double taken_at = 0;                  // when the engine took it (front end's clock, seconds)
};

struct EngineView {
  EngineSnapshot snapshot;
  double snapshot_age = 0;  // now - snapshot.taken_at, seconds
  bool healthy = true;
  // The front end's own exact accounting.
  int64_t inflight = 0;              // dispatched and not finished
  int64_t reserved_prefill = 0;      // prompt tokens dispatched whose first token has not arrived
  int64_t reserved_kv_tokens = 0;    // prompt + output tokens of in-flight requests (upper bound)
  int64_t picks_since_snapshot = 0;  // requests dispatched after the snapshot was taken
  // Expert-compute load of this engine's GPU relative to the mean over GPUs (1 = average).
  double moe_pressure = 1.0;
  // Prompt tokens of the request being dispatched that this engine holds in its prefix cache, as
  // far as the caller knows (its prefix index: the engines' own caches or KV events, or what the
  // front end sent where); 0 when unknown or nothing is cached. At most the prompt minus one token.
  int64_t cached_prompt_tokens = 0;
  // For a request with a class hint (DispatchRequest::class_hint >= 0): the fraction, in [0, 1],
  // of that class's expected routed-expert traffic (token-expert pairs from this engine, averaged
  // over MoE layers) that GPUs on this engine's node serve under the current expert placement.
  // 0 when the request has no hint or the caller does not know the placement.
  double class_locality = 0;
};

}  // namespace gimbal
