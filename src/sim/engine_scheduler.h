// EngineScheduler: one DP rank's request scheduler, with vLLM v1 semantics (vLLM 0.33 where the
// EngineLimits switches below are on; docs/baseline.md rows 1, 2, 4 and 5).
//
// Each step: running requests first, in admission order, each taking min(tokens still to compute,
// remaining token budget) — prefills are chunked across steps; when a request's new tokens need
// KV blocks that are not free, the last running request is preempted (its blocks freed, its
// progress discarded: recompute) and put at the front of the waiting queue, repeatedly, until the
// allocation fits or the request itself was the victim. Then, only if nothing was preempted in
// this step, waiting requests are admitted — preempted ones first, then in the queue policy's
// order — while budget, max_num_seqs and free KV blocks allow; the first that does not fit stops
// admission (head of line). A request samples a token in a step after which all its tokens are
// computed; it finishes when it has generated its output length. KV is paged in blocks of
// `block_size` tokens.
//
// enable_prefix_caching: blocks live in a BlockPool (sim/block_pool.h) with content hashes,
//   reference counts and vLLM's free-queue order (freed tail first, hashed to the back, unhashed to
//   the front, evicted when taken from the front). One block is reserved (vLLM's null block), so
//   kv_blocks - 1 are usable, and kv_usage is used / (kv_blocks - 1): cached free blocks count as
//   free. A block's hash chains its parent's hash with its content: for a full prompt block whose
//   last token lies in the part of the prompt that Request::prefix_hashes covers, the entry
//   covering that token (each covers prefix_hash_tokens; entries identify their whole prefix, as
//   Mooncake's do) and the block index; beyond those an identity unique to the request (its id and
//   the block index), so only the request itself — after preemption — can hit those blocks, output
//   blocks included. As in vLLM, a block gets its hash when the step that fills it is scheduled
//   (so another request admitted later in the same plan can hit it), provided its tokens' ids are
//   known then: under async scheduling the token sampled by the last Complete() is not, and its
//   block is hashed the next time the request is scheduled, if ever. A request
//   taken from the waiting queue with no computed tokens (new or preempted) is looked up: the hit
//   is the longest run of cached blocks within its first num_tokens - 1 tokens, and it starts
//   computed at the hit. Every lookup adds num_tokens to prefix_cache_queries() and the hit tokens
//   to prefix_cache_hits(), as vLLM counts them (a head-of-line request looked up again in a later
//   step counts again). Preemption and abort free blocks as finishing does (they stay cached).
// reserve_full_isl: a waiting request is admitted only if blocks for its whole current sequence
//   (prompt + tokens generated so far, not future output), less its hit blocks, plus those hit
//   blocks that are free-but-cached (touching them takes free blocks), are free; else admission
//   stops there. Then its first chunk is allocated as above.
// async_scheduling: a request finished by Complete() keeps its blocks and its max_num_seqs slot
//   through the next Schedule(), is not scheduled in it, and is released when that plan is made
//   (vLLM's AsyncScheduler processes a step's output after planning the next). It is no longer
//   counted by num_running() or Snapshot() but keeps HasWork() true until released; it is never
//   a preemption victim. Its finished event still comes from the Complete() that sampled it.
// cache_aware_admission_window (vLLM 0.34's `cache_aware_admission_window`, default 0: off): with
//   prefix caching, an FCFS queue policy and KV usage (1 - free / usable blocks) at least
//   cache_aware_admission_threshold, each step that may admit and is not deferred first reorders
//   the waiting requests among the first `window` of the waiting queue (preempted requests, at
//   its front, count towards the window but keep their places): the deepest cached prefix first
//   (as admission would find it), queue order breaking ties. The new order stays.
// defer_prefills (Schedule's argument; prefill_schedule_interval's throttled step, counted by the
//   caller): when some running request is decoding (prompt and any recompute all computed), the
//   step is deferred — running requests still in prefill are skipped, decodes run, and admission
//   stops at the first waiting request with more than one token left after its prefix hit (a full
//   hit with one token left is admitted). prefill_capacity_bound() is recomputed after every step
//   that was not deferred: true when waiting requests remain that it did not admit.
//
// The scheduler is a plain state machine: Schedule() plans a step, Complete() applies it. It keeps
// no clock; times come in as arguments. Costs are O(requests and blocks touched) per step.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/engine_state.h"
#include "core/request.h"
#include "model/cost_model.h"
#include "policy/queue/queue_policy.h"
#include "sim/block_pool.h"

namespace gimbal::sim {

struct EngineLimits {
  int64_t max_num_batched_tokens = 8192;
  int64_t max_num_seqs = 1024;
  int block_size = 16;
  int64_t kv_blocks = 0;               // total KV blocks of this rank (>= 2 with prefix caching)
  bool enable_prefix_caching = false;  // block hashes, LRU reuse; one block reserved
  bool reserve_full_isl = false;       // admission needs blocks for the whole current sequence
  bool async_scheduling = false;       // a finished request keeps its blocks and slot one more step
  // Prompt tokens each Request::prefix_hashes entry covers; 0 = block_size (one hash per KV
  // block). Mooncake traces hash 512-token blocks.
  int64_t prefix_hash_tokens = 0;
  // vLLM 0.34's cache-aware admission (see the top of this file); window 0 = arrival order.
  int64_t cache_aware_admission_window = 0;
  double cache_aware_admission_threshold = 0.5;
};

struct SeqState {
  Request req;
  double enqueued = 0;    // when the engine received it
  int64_t computed = 0;   // tokens whose KV is computed
  int64_t generated = 0;  // output tokens sampled so far
  int64_t blocks = 0;     // KV blocks held
  int preemptions = 0;
  // With prefix caching: the block table (pool block ids, head first), how many leading blocks
  // carry their hash, and the request's block hashes computed so far (kept across preemption).
  std::vector<int32_t> block_ids;
  int64_t hashed_blocks = 0;
  std::vector<uint64_t> block_hashes;
  int64_t sampled_at = -1;  // the Complete() (EngineScheduler's count) that last sampled a token
  int64_t num_tokens() const { return req.prompt_tokens + generated; }
};

struct ScheduledSeq {
  RequestId id = 0;
  int64_t new_tokens = 0;
  int64_t context_before = 0;
  int32_t traffic_class = 0;
  // The scheduler's record of the request, for its own Complete(): valid from Schedule() to the
  // matching Complete() (nothing is erased in between), so the step needs no lookups by id.
  // Null in a plan made by hand: Complete() then finds the request by id.
  SeqState* state = nullptr;
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
  // with more than one token to compute (see the top of this file).
  StepPlan Schedule(int64_t token_budget = -1, bool defer_prefills = false);
  // Applies the last plan: advances computed tokens, hashes blocks that became full, samples
  // tokens, frees finished requests (with async scheduling: after the next plan).
  std::vector<TokenEvent> Complete(const StepPlan& plan);

  bool HasWork() const {
    return !running_.empty() || !waiting_.empty() || !preempted_.empty() || !finishing_.empty();
  }
  EngineSnapshot Snapshot(double now) const;
  // Blocks held by requests, and blocks free (cached free ones included) out of the usable blocks:
  // kv_blocks, or kv_blocks - 1 with prefix caching.
  int64_t used_blocks() const { return pool_ ? pool_->num_used() : used_blocks_; }
  int64_t free_blocks() const {
    return pool_ ? pool_->num_free() : limits_.kv_blocks - used_blocks_;
  }
  int64_t usable_blocks() const { return pool_ ? pool_->num_usable() : limits_.kv_blocks; }
  const BlockPool* block_pool() const { return pool_.get(); }  // null without prefix caching
  // The same, to set its observer (BlockPool::SetObserver); null without prefix caching.
  BlockPool* mutable_block_pool() { return pool_.get(); }
  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size() + preempted_.size(); }
  int64_t total_preemptions() const { return total_preemptions_; }
  // Prefix-cache counters in tokens, as vLLM's prefix_cache_queries / prefix_cache_hits: prompt
  // (and resumed) tokens looked up at admission, and of those the tokens found cached. Every
  // lookup counts, including one whose admission then fails (vLLM counts those too).
  int64_t prefix_cache_queries() const { return prefix_queries_; }
  int64_t prefix_cache_hits() const { return prefix_hits_; }
  // vLLM's prefill capacity guard: true when the last non-deferred admission scan left waiting
  // requests behind (the queue could not drain), which turns prefill throttling off.
  bool prefill_capacity_bound() const { return prefill_capacity_bound_; }
  const EngineLimits& limits() const { return limits_; }
  // Prompt and recompute tokens not yet computed, over waiting and running requests.
  int64_t pending_prefill_tokens() const { return pending_prefill_; }
  const SeqState* Find(RequestId id) const;
  // The hashes of `r`'s prompt blocks another request can share (those its prefix hashes cover,
  // at most num_tokens - 1 tokens in whole blocks, as admission looks them up), head first. They
  // depend only on the limits, so every engine of a cluster gives the same: compute them once.
  std::vector<uint64_t> SharedPrefixBlockHashes(const Request& r) const;
  // The prompt tokens of `r` shareable through its first `matched_entries` prefix hashes: what
  // they cover, in whole blocks within num_tokens - 1 (what admission would find cached).
  int64_t SharedPrefixTokens(const Request& r, int64_t matched_entries) const;
  // Prompt tokens each Request::prefix_hashes entry covers on this engine.
  int64_t prefix_hash_tokens() const { return hash_tokens_; }
  // Prompt tokens this engine would find in its prefix cache for a prompt with these block hashes
  // if admitted now: the leading blocks it holds. 0 without prefix caching. O(blocks found).
  int64_t CachedPrefixTokens(std::span<const uint64_t> block_hashes) const;
  int64_t CachedPrefixTokens(const Request& r) const {
    return CachedPrefixTokens(SharedPrefixBlockHashes(r));
  }
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
  // Admits the head of the waiting queue if it fits; false stops the admission scan.
  bool Admit(SeqState& s, int64_t budget, bool deferred);
  uint64_t BlockHash(SeqState& s, int64_t index) const;
  // The hash of block i of `r`'s token sequence whose preceding block hashes to `parent`.
  uint64_t NextBlockHash(const Request& r, uint64_t parent, int64_t i) const;
  // Gives their hash to the blocks that are full once `upto` tokens are computed, as far as the
  // tokens' ids are known (under async scheduling, not the one sampled by the last Complete()).
  void CacheScheduledBlocks(SeqState& s, int64_t upto);
  void ReleaseFinishing();
  // The admission lookup: the leading blocks of `s` (within num_tokens - 1 tokens) the pool holds
  // cached, appended to `hits` when not null; returns how many. Needs the pool.
  int64_t LeadingCachedBlocks(SeqState& s, std::vector<int32_t>* hits);
  // Tokens admission would find cached for a waiting request (no references taken, not counted).
  int64_t ProbeCachedTokens(SeqState& s);
  // cache_aware_admission_window's reordering of the head of the waiting queue.
  void ReorderWaitingByCachedPrefix();

  EngineLimits limits_;
  const QueuePolicy* queue_;
  std::unordered_map<RequestId, SeqState> seqs_;
  std::vector<RequestId> running_;   // admission order
  std::deque<RequestId> preempted_;  // front of the waiting queue
  // (key, enqueued, place, id): ordered by the queue policy's key, then arrival, then `place`
  // (the id when added); a cache-aware reordering moves requests between the places of the
  // window, so the set's order is the queue's.
  std::set<std::tuple<double, double, RequestId, RequestId>> waiting_;
  bool cache_aware_ = false;  // cache_aware_admission_window applies (see the top of this file)
  std::vector<RequestId> finishing_;  // async: finished, released after the next plan
  std::unique_ptr<BlockPool> pool_;   // with prefix caching
  std::vector<int32_t> hits_;         // scratch: the admission lookup's hit blocks
  int64_t completes_ = 0;             // Complete() calls so far
  int64_t hash_tokens_ = 0;           // prompt tokens per Request::prefix_hashes entry
  int64_t used_blocks_ = 0;
  int64_t total_preemptions_ = 0;
  int64_t pending_prefill_ = 0;
  int64_t prefix_queries_ = 0, prefix_hits_ = 0;
  bool prefill_capacity_bound_ = false;
  std::vector<RequestId> prefilling_;  // running, prefill not complete (few: chunk boundaries)
  void TrackPrefilling(RequestId id, bool in_progress);
};

}  // namespace gimbal::sim
