#include "sim/engine_scheduler.h"

#include <algorithm>

#include "core/status.h"

namespace gimbal::sim {
namespace {

// Tokens still to prefill (prompt, or recompute after preemption), not counting the one token a
// decoding request computes each step.
int64_t PrefillRemaining(const SeqState& s) {
  const int64_t target = s.generated == 0 ? s.req.prompt_tokens : s.num_tokens() - 1;
  return std::max<int64_t>(0, target - s.computed);
}

}  // namespace

EngineScheduler::EngineScheduler(EngineLimits limits, const QueuePolicy* queue)
    : limits_(limits), queue_(queue) {
  GIMBAL_CHECK(queue_ != nullptr, "EngineScheduler needs a queue policy");
  GIMBAL_CHECK(limits_.block_size > 0 && limits_.kv_blocks > 0, "EngineScheduler needs KV blocks");
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
  waiting_.emplace(queue_->Key(e), now, r.id);
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
  } else if (auto p = std::find(preempted_.begin(), preempted_.end(), id); p != preempted_.end()) {
    preempted_.erase(p);
  } else {
    for (auto w = waiting_.begin(); w != waiting_.end(); ++w) {
      if (std::get<2>(*w) == id) {
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
  used_blocks_ += need;
  return true;
}

void EngineScheduler::Free(SeqState& s) {
  used_blocks_ -= s.blocks;
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

StepPlan EngineScheduler::Schedule(int64_t token_budget, bool defer_prefills) {
  (void)defer_prefills;
  StepPlan plan;
  int64_t budget = token_budget < 0 ? limits_.max_num_batched_tokens
                                    : std::min(token_budget, limits_.max_num_batched_tokens);
  auto add = [&](SeqState& s, int64_t n) {
    plan.seqs.push_back({s.req.id, n, s.computed, s.req.traffic_class});
    budget -= n;
  };

  // 1. Running requests, in admission order.
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    SeqState& s = seqs_.at(running_[i]);
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
    while (budget > 0 && static_cast<int64_t>(running_.size()) < limits_.max_num_seqs) {
      RequestId id = 0;
      bool from_preempted = false;
      if (!preempted_.empty()) {
        id = preempted_.front();
        from_preempted = true;
      } else if (!waiting_.empty()) {
        id = std::get<2>(*waiting_.begin());
      } else {
        break;
      }
      SeqState& s = seqs_.at(id);
      const int64_t n = std::min(s.num_tokens() - s.computed, budget);
      if (!Allocate(s, s.computed + n)) break;
      if (from_preempted) {
        preempted_.pop_front();
      } else {
        waiting_.erase(waiting_.begin());
      }
      running_.push_back(id);
      add(s, n);
    }
  }

  // 3. Batch summary for the cost model.
  for (const ScheduledSeq& q : plan.seqs) {
    const SeqState& s = seqs_.at(q.id);
    const auto n = static_cast<double>(q.new_tokens);
    plan.batch.tokens += q.new_tokens;
    plan.batch.sequences += 1;
    if (q.context_before + q.new_tokens == s.num_tokens()) plan.batch.logits += 1;
    const double pairs = n * (static_cast<double>(q.context_before) + (n + 1) / 2);
    plan.batch.attn_pairs += pairs;
    if (q.new_tokens == 1) plan.batch.decode_attn_pairs += pairs;
    plan.batch.kv_read_tokens += static_cast<double>(q.context_before + q.new_tokens);
  }
  return plan;
}

std::vector<TokenEvent> EngineScheduler::Complete(const StepPlan& plan) {
  std::vector<TokenEvent> events;
  bool any_finished = false;
  for (const ScheduledSeq& q : plan.seqs) {
    auto it = seqs_.find(q.id);
    GIMBAL_CHECK(it != seqs_.end(), "completed a step for an unknown request");
    SeqState& s = it->second;
    pending_prefill_ -= PrefillRemaining(s);
    s.computed += q.new_tokens;
    if (s.computed == s.num_tokens()) {
      s.generated++;
      const bool finished = s.generated >= s.req.output_tokens;
      events.push_back({s.req.id, s.generated, finished, s.preemptions});
      if (finished) {
        Free(s);
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
      seqs_.erase(e.id);
    }
  }
  return events;
}

EngineSnapshot EngineScheduler::Snapshot(double now) const {
  EngineSnapshot s;
  s.waiting = static_cast<int64_t>(num_waiting());
  s.running = static_cast<int64_t>(running_.size());
  s.kv_usage = static_cast<double>(used_blocks_) / static_cast<double>(limits_.kv_blocks);
  s.kv_capacity_tokens = limits_.kv_blocks * limits_.block_size;
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
