// EngineScheduler: one DP rank's request scheduler, with vLLM v1 semantics.
//
// Each step: running requests first, in admission order, each taking min(tokens still to compute,
// remaining token budget) — prefills are chunked across steps; when a request's new tokens need
// KV blocks that are not free, the last running request is preempted (its blocks freed, its
// progress discarded: recompute) and put at the front of the waiting queue, repeatedly, until the
// allocation fits or the request itself was the victim. Then, only if nothing was preempted in
// this step, waiting requests are admitted — preempted ones first, then in the queue policy's
// order — while budget, max_num_seqs and free KV blocks allow; the first that does not fit stops
// admission. A request samples a token in a step after which all its tokens are computed; it
// finishes when it has generated its output length. KV is paged in blocks of `block_size` tokens.
//
// The scheduler is a plain state machine: Schedule() plans a step, Complete() applies it. It keeps
// no clock; times come in as arguments.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/engine_state.h"
#include "core/request.h"
#include "model/cost_model.h"
#include "policy/queue/queue_policy.h"

namespace gimbal::sim {

struct EngineLimits {
  int64_t max_num_batched_tokens = 8192;
  int64_t max_num_seqs = 1024;
  int block_size = 16;
  int64_t kv_blocks = 0;               // total KV blocks of this rank
  bool enable_prefix_caching = false;  // see EngineConfig
  bool reserve_full_isl = false;
  bool async_scheduling = false;  // a finished request keeps its blocks and slot one more step
};

struct SeqState {
  Request req;
  double enqueued = 0;    // when the engine received it
  int64_t computed = 0;   // tokens whose KV is computed
  int64_t generated = 0;  // output tokens sampled so far
  int64_t blocks = 0;     // KV blocks held
  int preemptions = 0;
  int64_t num_tokens() const { return req.prompt_tokens + generated; }
};

struct ScheduledSeq {
  RequestId id = 0;
  int64_t new_tokens = 0;
  int64_t context_before = 0;
  int32_t traffic_class = 0;
};

struct StepPlan {
  std::vector<ScheduledSeq> seqs;
  std::vector<RequestId> preempted;
  RankBatch batch;  // summary for the cost model
  bool empty() const { return seqs.empty(); }
};

// What happened to a request when a step completed.
struct TokenEvent {
  RequestId id = 0;
  int64_t generated = 0;  // count after this step (1 = first token)
  bool finished = false;
  int preemptions = 0;  // times the request was preempted so far
};

class EngineScheduler {
 public:
  EngineScheduler(EngineLimits limits, const QueuePolicy* queue);

  // Accepts a new request at time `now`.
  void Add(const Request& r, double now);
  // Drops request `id` wherever it is (waiting, preempted or running) and frees its KV blocks, as
  // vLLM's abort does. Not between Schedule() and Complete(). False when the id is unknown.
  bool Abort(RequestId id);
  // Plans the next step within `token_budget` tokens (clamped to [0, max_num_batched_tokens];
  // negative = the full limit). Must be followed by Complete() before the next Schedule().
  // With `defer_prefills` (a throttled step of prefill_schedule_interval) and some running request
  // decoding, running prefill chunks are skipped and admission stops at the first waiting request
  // with more than one token to compute.
  StepPlan Schedule(int64_t token_budget = -1, bool defer_prefills = false);
  // Applies the last plan: advances computed tokens, samples tokens, frees finished requests.
  std::vector<TokenEvent> Complete(const StepPlan& plan);

  bool HasWork() const { return !running_.empty() || !waiting_.empty() || !preempted_.empty(); }
  EngineSnapshot Snapshot(double now) const;
  int64_t used_blocks() const { return used_blocks_; }
  int64_t free_blocks() const { return limits_.kv_blocks - used_blocks_; }
  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size() + preempted_.size(); }
  int64_t total_preemptions() const { return total_preemptions_; }
  // Prefix-cache counters in tokens, as vLLM's prefix_cache_queries / prefix_cache_hits: prompt
  // (and resumed) tokens looked up at admission, and of those the tokens found cached.
  int64_t prefix_cache_queries() const { return prefix_queries_; }
  int64_t prefix_cache_hits() const { return prefix_hits_; }
  // vLLM's prefill capacity guard: true when the last non-deferred admission scan left waiting
  // requests behind (the queue could not drain), which turns prefill throttling off.
  bool prefill_capacity_bound() const { return prefill_capacity_bound_; }
  const EngineLimits& limits() const { return limits_; }
  // Prompt and recompute tokens not yet computed, over waiting and running requests.
  int64_t pending_prefill_tokens() const { return pending_prefill_; }
  const SeqState* Find(RequestId id) const;
  // Running requests whose prompt (or recompute) is not fully computed yet — chunked prefills in
  // progress — and the KV tokens they already hold. O(chunked prefills in progress).
  struct PrefillInProgress {
    int64_t sequences = 0;
    int64_t context_tokens = 0;
  };
  PrefillInProgress prefill_in_progress() const;

 private:
  int64_t BlocksFor(int64_t tokens) const;
  bool Allocate(SeqState& s, int64_t total_tokens);
  void Free(SeqState& s);
  void Preempt(RequestId victim);

  EngineLimits limits_;
  const QueuePolicy* queue_;
  std::unordered_map<RequestId, SeqState> seqs_;
  std::vector<RequestId> running_;                           // admission order
  std::deque<RequestId> preempted_;                          // front of the waiting queue
  std::set<std::tuple<double, double, RequestId>> waiting_;  // (key, enqueued, id)
  int64_t used_blocks_ = 0;
  int64_t total_preemptions_ = 0;
  int64_t pending_prefill_ = 0;
  int64_t prefix_queries_ = 0, prefix_hits_ = 0;
  bool prefill_capacity_bound_ = false;
  std::vector<RequestId> prefilling_;  // running, prefill not complete (few: chunk boundaries)
  void TrackPrefilling(RequestId id, bool in_progress);
};

}  // namespace gimbal::sim
