#include "sim/engine_scheduler.h"

#include <algorithm>

#include "core/block_hash.h"
#include "core/hash.h"
#include "core/status.h"

namespace gimbal::sim {
namespace {

// Tokens still to prefill (prompt, or recompute after preemption), not counting the one token a
// decoding request computes each step.
int64_t PrefillRemaining(const SeqState& s) {
  const int64_t target = s.generated == 0 ? s.req.prompt_tokens : s.num_tokens() - 1;
  return std::max<int64_t>(0, target - s.computed);
}

constexpr uint64_t kRequestTag = 0x67696d62616c0003ULL;  // content unique to one request

}  // namespace

EngineScheduler::EngineScheduler(EngineLimits limits, const QueuePolicy* queue)
    : limits_(limits), queue_(queue) {
  GIMBAL_CHECK(queue_ != nullptr, "EngineScheduler needs a queue policy");
  GIMBAL_CHECK(limits_.block_size > 0 && limits_.kv_blocks > 0, "EngineScheduler needs KV blocks");
  if (limits_.enable_prefix_caching) {
    GIMBAL_CHECK(limits_.kv_blocks >= 2,
                 "prefix caching reserves one KV block and needs at least 2 in all");
    pool_ = std::make_unique<BlockPool>(limits_.kv_blocks);
  }
  GIMBAL_CHECK(limits_.prefix_hash_tokens >= 0, "prefix_hash_tokens must not be negative");
  hash_tokens_ = limits_.prefix_hash_tokens > 0 ? limits_.prefix_hash_tokens : limits_.block_size;
  GIMBAL_CHECK(limits_.cache_aware_admission_window >= 0,
               "cache_aware_admission_window must not be negative");
  // As vLLM 0.34: it needs a prefix cache to consult and reorders by position, which only a
  // first-come-first-served queue has.
  cache_aware_ = limits_.cache_aware_admission_window > 0 && pool_ && queue_->name() == "fcfs";
}

uint64_t EngineScheduler::NextBlockHash(const Request& r, uint64_t parent, int64_t i) const {
  const int64_t end = (i + 1) * limits_.block_size;  // tokens up to the block's end
  const int64_t entry = (end - 1) / hash_tokens_;    // the prefix hash covering its last token
  const bool from_prompt =
      end <= r.prompt_tokens && entry < static_cast<int64_t>(r.prefix_hashes.size());
  if (from_prompt) return PrefixBlockHash(parent, r.prefix_hashes[static_cast<size_t>(entry)], i);
  return HashCombine(parent, HashCombine(HashCombine(kRequestTag, static_cast<uint64_t>(r.id)),
                                         static_cast<uint64_t>(i)));
}

uint64_t EngineScheduler::BlockHash(SeqState& s, int64_t index) const {
  std::vector<uint64_t>& h = s.block_hashes;
  while (static_cast<int64_t>(h.size()) <= index) {
    const auto i = static_cast<int64_t>(h.size());
    h.push_back(NextBlockHash(s.req, i == 0 ? kRootBlockHash : h.back(), i));
  }
  return h[static_cast<size_t>(index)];
}

int64_t EngineScheduler::SharedPrefixTokens(const Request& r, int64_t matched_entries) const {
  // Only blocks covered by the prompt's prefix hashes can be shared with another request, and
  // admission looks up at most num_tokens - 1 tokens.
  const int64_t entries =
      std::clamp<int64_t>(matched_entries, 0, static_cast<int64_t>(r.prefix_hashes.size()));
  const int64_t covered = std::min(r.prompt_tokens, entries * hash_tokens_);
  return std::max<int64_t>(0, std::min(covered, r.prompt_tokens - 1)) / limits_.block_size *
         limits_.block_size;
}

std::vector<uint64_t> EngineScheduler::SharedPrefixBlockHashes(const Request& r) const {
  std::vector<uint64_t> out;
  const int64_t max_blocks =
      SharedPrefixTokens(r, static_cast<int64_t>(r.prefix_hashes.size())) / limits_.block_size;
  out.reserve(static_cast<size_t>(std::max<int64_t>(0, max_blocks)));
  uint64_t h = kRootBlockHash;
  for (int64_t i = 0; i < max_blocks; ++i) out.push_back(h = NextBlockHash(r, h, i));
  return out;
}

int64_t EngineScheduler::CachedPrefixTokens(std::span<const uint64_t> block_hashes) const {
  if (!pool_) return 0;
  int64_t found = 0;
  for (const uint64_t h : block_hashes) {
    if (pool_->Lookup(h) < 0) break;
    ++found;
  }
  return found * limits_.block_size;
}

void EngineScheduler::CacheScheduledBlocks(SeqState& s, int64_t upto) {
  const bool last_unknown = limits_.async_scheduling && s.sampled_at == completes_;
  const int64_t known = s.num_tokens() - (last_unknown ? 1 : 0);
  const int64_t full = std::min<int64_t>(std::min(upto, known) / limits_.block_size, s.blocks);
  for (int64_t i = s.hashed_blocks; i < full; ++i) {
    pool_->Cache(s.block_ids[static_cast<size_t>(i)], BlockHash(s, i));
  }
  s.hashed_blocks = std::max(s.hashed_blocks, full);
}

int64_t EngineScheduler::BlocksFor(int64_t tokens) const {
  return (tokens + limits_.block_size - 1) / limits_.block_size;
}

void EngineScheduler::Add(const Request& r, double now) {
  SeqState s;
  s.req = r;
  s.enqueued = now;
  pending_prefill_ += PrefillRemaining(s);
  QueueEntry e{r.id, now, r.prompt_tokens, r.prompt_tokens, r.priority};
  waiting_.emplace(queue_->Key(e), now, r.id, r.id);
  seqs_.emplace(r.id, std::move(s));
}

bool EngineScheduler::Abort(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  SeqState& s = it->second;
  pending_prefill_ -= PrefillRemaining(s);
  Free(s);
  TrackPrefilling(id, false);
  if (auto r = std::find(running_.begin(), running_.end(), id); r != running_.end()) {
    running_.erase(r);
  } else if (auto f = std::find(finishing_.begin(), finishing_.end(), id); f != finishing_.end()) {
    finishing_.erase(f);
  } else if (auto p = std::find(preempted_.begin(), preempted_.end(), id); p != preempted_.end()) {
    preempted_.erase(p);
  } else {
    for (auto w = waiting_.begin(); w != waiting_.end(); ++w) {
      if (std::get<3>(*w) == id) {
        waiting_.erase(w);
        break;
      }
    }
  }
  seqs_.erase(it);
  return true;
}

bool EngineScheduler::Allocate(SeqState& s, int64_t total_tokens) {
  const int64_t need = BlocksFor(total_tokens) - s.blocks;
  if (need <= 0) return true;
  if (need > free_blocks()) return false;
  s.blocks += need;
  if (pool_) {
    pool_->Allocate(need, s.block_ids);
  } else {
    used_blocks_ += need;
  }
  return true;
}

void EngineScheduler::Free(SeqState& s) {
  if (pool_) {
    pool_->Free(s.block_ids);
    s.block_ids.clear();
    s.hashed_blocks = 0;
  } else {
    used_blocks_ -= s.blocks;
  }
  s.blocks = 0;
}

void EngineScheduler::Preempt(RequestId victim) {
  SeqState& v = seqs_.at(victim);
  pending_prefill_ -= PrefillRemaining(v);
  Free(v);
  TrackPrefilling(victim, false);
  v.computed = 0;
  v.preemptions++;
  pending_prefill_ += PrefillRemaining(v);
  total_preemptions_++;
  preempted_.push_front(victim);
}

bool EngineScheduler::Admit(SeqState& s, int64_t budget, bool deferred) {
  // Prefix lookup: a waiting request never has computed tokens (preemption resets them).
  hits_.clear();
  if (pool_ && s.computed == 0) {
    LeadingCachedBlocks(s, &hits_);
    prefix_queries_ += s.num_tokens();
    prefix_hits_ += static_cast<int64_t>(hits_.size()) * limits_.block_size;
  }
  const auto hit_blocks = static_cast<int64_t>(hits_.size());
  const int64_t start = s.computed + hit_blocks * limits_.block_size;
  const int64_t left = s.num_tokens() - start;
  if (deferred && left > 1) return false;
  const int64_t n = std::min(left, budget);
  if (!pool_) {
    if (limits_.reserve_full_isl && BlocksFor(s.num_tokens()) - s.blocks > free_blocks()) {
      return false;
    }
    return Allocate(s, s.computed + n);
  }
  // Hit blocks nobody holds sit in the free queue: touching them takes free blocks.
  int64_t free_hits = 0;
  for (int32_t b : hits_) free_hits += pool_->ref_count(b) == 0 ? 1 : 0;
  if (limits_.reserve_full_isl &&
      BlocksFor(s.num_tokens()) - hit_blocks + free_hits > free_blocks()) {
    return false;
  }
  if (BlocksFor(start + n) - hit_blocks + free_hits > free_blocks()) return false;
  for (int32_t b : hits_) pool_->Touch(b);
  s.block_ids.assign(hits_.begin(), hits_.end());
  s.blocks = hit_blocks;
  s.hashed_blocks = hit_blocks;
  pending_prefill_ -= PrefillRemaining(s);
  s.computed = start;
  pending_prefill_ += PrefillRemaining(s);
  const bool fits = Allocate(s, start + n);
  GIMBAL_CHECK(fits, "admission allocation failed after its check");
  return true;
}

int64_t EngineScheduler::LeadingCachedBlocks(SeqState& s, std::vector<int32_t>* hits) {
  const int64_t max_hit_blocks = (s.num_tokens() - 1) / limits_.block_size;
  int64_t n = 0;
  for (; n < max_hit_blocks; ++n) {
    const int32_t b = pool_->Lookup(BlockHash(s, n));
    if (b < 0) break;
    if (hits != nullptr) hits->push_back(b);
  }
  return n;
}

int64_t EngineScheduler::ProbeCachedTokens(SeqState& s) {
  if (!pool_ || s.computed != 0) return 0;
  return LeadingCachedBlocks(s, nullptr) * limits_.block_size;
}

void EngineScheduler::ReorderWaitingByCachedPrefix() {
  if (waiting_.size() + preempted_.size() < 2) return;
  const double usage = 1.0 - static_cast<double>(free_blocks()) /
                                 static_cast<double>(std::max<int64_t>(1, usable_blocks()));
  if (usage < limits_.cache_aware_admission_threshold) return;
  // Preempted requests lead the queue: they take places of the window but are not reordered.
  const auto window = static_cast<size_t>(limits_.cache_aware_admission_window);
  if (window <= preempted_.size()) return;
  const size_t m = std::min(window - preempted_.size(), waiting_.size());
  if (m < 2) return;
  std::vector<std::tuple<double, double, RequestId, RequestId>> head;
  head.reserve(m);
  auto end = waiting_.begin();
  for (size_t i = 0; i < m; ++i, ++end) head.push_back(*end);
  std::vector<int64_t> cached(m);
  for (size_t i = 0; i < m; ++i) cached[i] = ProbeCachedTokens(seqs_.at(std::get<3>(head[i])));
  std::vector<size_t> order(m);
  for (size_t i = 0; i < m; ++i) order[i] = i;
  // Deepest cached prefix first, queue order breaking ties.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cached[a] > cached[b]; });
  bool moved = false;
  for (size_t i = 0; i < m && !moved; ++i) moved = order[i] != i;
  if (!moved) return;
  waiting_.erase(waiting_.begin(), end);
  for (size_t i = 0; i < m; ++i) {
    // Place i keeps its key, arrival and place; the request moved there is head[order[i]]'s.
    waiting_.emplace(std::get<0>(head[i]), std::get<1>(head[i]), std::get<2>(head[i]),
                     std::get<3>(head[order[i]]));
  }
}

void EngineScheduler::ReleaseFinishing() {
  for (RequestId id : finishing_) {
    Free(seqs_.at(id));
    seqs_.erase(id);
  }
  finishing_.clear();
}

StepPlan EngineScheduler::Schedule(int64_t token_budget, bool defer_prefills) {
  StepPlan plan;
  int64_t budget = token_budget < 0 ? limits_.max_num_batched_tokens
                                    : std::min(token_budget, limits_.max_num_batched_tokens);
  auto add = [&](SeqState& s, int64_t n) {
    plan.seqs.push_back({s.req.id, n, s.computed, s.req.traffic_class, &s});
    budget -= n;
    if (pool_) CacheScheduledBlocks(s, s.computed + n);
  };

  // A throttled step defers prefills only while some running request is decoding.
  bool deferred = false;
  if (defer_prefills) {
    for (RequestId id : running_) {
      if (PrefillRemaining(seqs_.at(id)) == 0) {
        deferred = true;
        break;
      }
    }
  }

  // 1. Running requests, in admission order (prefills skipped in a deferred step).
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    SeqState& s = seqs_.at(running_[i]);
    if (deferred && PrefillRemaining(s) > 0) {
      ++i;
      continue;
    }
    const int64_t n = std::min(s.num_tokens() - s.computed, budget);
    bool self_preempted = false;
    while (!Allocate(s, s.computed + n)) {
      const RequestId victim = running_.back();
      running_.pop_back();
      Preempt(victim);
      plan.preempted.push_back(victim);
      if (victim == s.req.id) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    add(s, n);
    ++i;
  }

  // 2. Admission, only when this step preempted nothing.
  if (plan.preempted.empty()) {
    if (cache_aware_ && !deferred) ReorderWaitingByCachedPrefix();
    while (budget > 0 &&
           static_cast<int64_t>(running_.size() + finishing_.size()) < limits_.max_num_seqs) {
      RequestId id = 0;
      bool from_preempted = false;
      if (!preempted_.empty()) {
        id = preempted_.front();
        from_preempted = true;
      } else if (!waiting_.empty()) {
        id = std::get<3>(*waiting_.begin());
      } else {
        break;
      }
      SeqState& s = seqs_.at(id);
      if (!Admit(s, budget, deferred)) break;
      const int64_t n = std::min(s.num_tokens() - s.computed, budget);
      if (from_preempted) {
        preempted_.pop_front();
      } else {
        waiting_.erase(waiting_.begin());
      }
      running_.push_back(id);
      add(s, n);
    }
  }
  // vLLM's capacity guard, after every waiting scan that was not deferred.
  if (!deferred) prefill_capacity_bound_ = !waiting_.empty() || !preempted_.empty();

  // 3. Batch summary for the cost model.
  for (const ScheduledSeq& q : plan.seqs) {
    const SeqState& s = *q.state;
    const auto n = static_cast<double>(q.new_tokens);
    plan.batch.tokens += q.new_tokens;
    plan.batch.sequences += 1;
    if (q.context_before + q.new_tokens == s.num_tokens()) plan.batch.logits += 1;
    const double pairs = n * (static_cast<double>(q.context_before) + (n + 1) / 2);
    plan.batch.attn_pairs += pairs;
    if (q.new_tokens == 1) plan.batch.decode_attn_pairs += pairs;
    plan.batch.kv_read_tokens += static_cast<double>(q.context_before + q.new_tokens);
  }
  // 4. Async scheduling: requests finished by the last Complete() held their blocks and slots
  // while this plan was made; now their output is processed and they go.
  ReleaseFinishing();
  return plan;
}

std::vector<TokenEvent> EngineScheduler::Complete(const StepPlan& plan) {
  std::vector<TokenEvent> events;
  bool any_finished = false;
  for (const ScheduledSeq& q : plan.seqs) {
    SeqState* found = q.state;
    if (found == nullptr) {  // a plan put together by hand
      auto it = seqs_.find(q.id);
      GIMBAL_CHECK(it != seqs_.end(), "completed a step for an unknown request");
      found = &it->second;
    }
    GIMBAL_CHECK(found->req.id == q.id, "completed a step for an unknown request");
    SeqState& s = *found;
    pending_prefill_ -= PrefillRemaining(s);
    s.computed += q.new_tokens;
    if (s.computed == s.num_tokens()) {
      s.generated++;
      s.sampled_at = completes_ + 1;
      const bool finished = s.generated >= s.req.output_tokens;
      events.push_back({s.req.id, s.generated, finished, s.preemptions});
      if (finished) {
        if (!limits_.async_scheduling) Free(s);
        TrackPrefilling(s.req.id, false);
        any_finished = true;
        continue;  // erased below
      }
    }
    const int64_t remaining = PrefillRemaining(s);
    pending_prefill_ += remaining;
    TrackPrefilling(s.req.id, remaining > 0);
  }
  if (any_finished) {
    for (const TokenEvent& e : events) {
      if (!e.finished) continue;
      running_.erase(std::find(running_.begin(), running_.end(), e.id));
      if (limits_.async_scheduling) {
        finishing_.push_back(e.id);
      } else {
        seqs_.erase(e.id);
      }
    }
  }
  ++completes_;
  return events;
}

EngineSnapshot EngineScheduler::Snapshot(double now) const {
  EngineSnapshot s;
  s.waiting = static_cast<int64_t>(num_waiting());
  s.running = static_cast<int64_t>(running_.size());
  s.kv_usage = static_cast<double>(used_blocks()) / static_cast<double>(usable_blocks());
  s.kv_capacity_tokens = usable_blocks() * limits_.block_size;
  s.prefill_pending_tokens = pending_prefill_;
  s.taken_at = now;
  return s;
}

EngineScheduler::PrefillInProgress EngineScheduler::prefill_in_progress() const {
  PrefillInProgress p;
  for (RequestId id : prefilling_) {
    p.sequences++;
    p.context_tokens += seqs_.at(id).computed;
  }
  return p;
}

void EngineScheduler::TrackPrefilling(RequestId id, bool in_progress) {
  auto it = std::find(prefilling_.begin(), prefilling_.end(), id);
  if (in_progress && it == prefilling_.end()) prefilling_.push_back(id);
  if (!in_progress && it != prefilling_.end()) prefilling_.erase(it);
}

const SeqState* EngineScheduler::Find(RequestId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second;
}

}  // namespace gimbal::sim
