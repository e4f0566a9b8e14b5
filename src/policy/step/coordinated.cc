// gimbal: coordinated step budgets (DESIGN §2.2, "in-engine scheduling across ranks").
//
// In lockstep DP+EP every decoding sequence on every rank waits for the slowest rank's step, so
// one rank's 8,192-token prefill chunk sets the inter-token latency of all the cluster's decodes.
// Before each step this policy prices, with the cost model, the decode-only step of the busiest
// rank (t_d: its running sequences, one token each, at their current context) and sets a target
//
//   tau = stretch · t_d          (and at most max_step_ms when that is set and above t_d)
//
// Each rank then gets the largest budget whose own predicted step time stays within tau — so the
// ranks' steps are evened out in time, not in tokens — and at least its running sequences plus
// `min_chunk` prompt tokens, so prefill always progresses. Where that floor pushes a rank's step
// past tau (a large model whose decode step is short next to a prefill token's cost), the step
// lasts that long anyway, so every rank then fills up to the slowest rank's predicted step
// (`fill`): prompt tokens that cost no cluster time. Prefill is thereby cut into chunks
// sized to what the step can absorb: many small steps while sequences decode, the full budget
// when nothing decodes (no rank runs anything) — the fixed budget's trade-off of throughput
// against inter-token latency made per step, from the cluster's live state.
//
// The estimate of a rank's step (attention over its sequences' context, dense layers, shared and
// routed experts for its own tokens with experts spread evenly over the GPUs, LM head, CPU
// overhead — serial, or hidden behind the GPU part when the engines schedule asynchronously,
// StepDeps::async_scheduling) leaves out the all-to-all, which the budget moves little.
//
// With `backlog_steps` k (default 8; 0 = off), a rank's floor grows with its backlog. With `fit`
// the chunk that fits tau and P the rank's pending prompt tokens, a chunk of c tokens costs the
// decodes about c/fit (the step's length against what tau allows) and the backlog about P/c
// steps to wait, weighted 1/k; c/fit + P/(k·c) is least at c = sqrt(fit·P/k), the square-root
// rule. Under a light backlog (P < k·fit) that is below fit and changes nothing; under overload
// the rank takes larger, more efficient chunks, so the backlog drains sooner.
//
// Parameters: stretch (default 2.5, >= 1; tuned on the suite's training scenarios,
// docs/policies.md), min_chunk (tokens, default 256, >= 0), max_step_ms (default 0 = off),
// drain_steps (default 0 = off: when set, a rank may always prefill pending/drain_steps tokens),
// backlog_steps (default 8, >= 0, 0 = off; tuned with the queue's max_overtake_ms for the
// long-prompt tail, docs/policies.md), fill (default true).
#include <algorithm>
#include <cmath>

#include "model/cost_model.h"
#include "policy/step/builtin_step_policies.h"

namespace gimbal::step_internal {
namespace {

struct CoordinatedOptions {
  double stretch = 2.5;
  int64_t min_chunk = 256;
  double max_step = 0;       // seconds; 0 = no absolute cap
  int64_t drain_steps = 0;   // 0 = off; else a rank may prefill pending/drain_steps tokens per step
  double backlog_steps = 8;  // k of the square-root floor; 0 = off
  bool fill = true;          // ranks fill up to the slowest rank's predicted step
};

class CoordinatedBudgetPolicy final : public StepPolicy {
 public:
  CoordinatedBudgetPolicy(const CostModel* cost, int ranks, bool async, CoordinatedOptions o)
      : cost_(cost), ranks_(ranks), async_(async), o_(o) {}

  void Budgets(std::span<const RankWork> ranks, int64_t max_budget,
               std::span<int64_t> budgets) const override {
    bool any_running = false, any_prefill = false;
    for (const RankWork& w : ranks) {
      any_running = any_running || w.running > 0;
      any_prefill = any_prefill || w.pending_prefill > 0;
    }
    if (!any_running || !any_prefill) {
      std::fill(budgets.begin(), budgets.end(), max_budget);
      return;
    }
    double decode_only = 0;
    for (const RankWork& w : ranks) decode_only = std::max(decode_only, StepTime(w, 0));
    double tau = o_.stretch * decode_only;
    if (o_.max_step > 0) tau = std::min(tau, std::max(o_.max_step, decode_only));

    // The lockstep step lasts as long as its slowest rank: tau, or longer where a floor pushes a
    // rank past it (only then is the rank's own time priced again).
    double step = tau;
    for (size_t r = 0; r < ranks.size(); ++r) {
      const RankWork& w = ranks[r];
      if (w.pending_prefill <= 0) {  // nothing to chunk: the engine's own limit stands
        budgets[r] = max_budget;
        continue;
      }
      int64_t floor_prefill = o_.min_chunk;
      if (o_.drain_steps > 0) {
        floor_prefill =
            std::max(floor_prefill, (w.pending_prefill + o_.drain_steps - 1) / o_.drain_steps);
      }
      const int64_t room = Room(w, max_budget);
      const int64_t fit = LargestFitting(w, 0, room, tau);
      floor_prefill = std::max(floor_prefill, BacklogChunk(w, fit));
      const int64_t prefill = std::min(room, std::max(fit, floor_prefill));
      budgets[r] = Decodes(w, max_budget) + prefill;
      if (prefill > fit) step = std::max(step, StepTime(w, prefill));
    }
    // When a floor set a longer step, every rank may prefill up to it without lengthening it.
    if (!o_.fill || step <= tau) return;
    for (size_t r = 0; r < ranks.size(); ++r) {
      const RankWork& w = ranks[r];
      if (w.pending_prefill <= 0) continue;
      const int64_t decodes = Decodes(w, max_budget);
      budgets[r] = decodes + LargestFitting(w, budgets[r] - decodes, Room(w, max_budget), step);
    }
  }

  std::string name() const override { return "gimbal"; }

 private:
  // Tokens reserved for the rank's running sequences (one each), and the prompt tokens that may
  // come on top within the engine's limit.
  static int64_t Decodes(const RankWork& w, int64_t max_budget) {
    return std::min(max_budget, w.running);
  }
  static int64_t Room(const RankWork& w, int64_t max_budget) {
    return std::min(std::max<int64_t>(0, max_budget - Decodes(w, max_budget)), w.pending_prefill);
  }

  // The square-root floor sqrt(fit · pending / backlog_steps), fit counted as at least the
  // 16-token search granularity; 0 when off.
  int64_t BacklogChunk(const RankWork& w, int64_t fit) const {
    if (o_.backlog_steps <= 0 || w.pending_prefill <= 0) return 0;
    const double f = static_cast<double>(std::max<int64_t>(fit, 16));
    return static_cast<int64_t>(
        std::sqrt(f * static_cast<double>(w.pending_prefill) / o_.backlog_steps));
  }

  // Largest prefill p in [lo, hi] with StepTime(w, p) <= limit (StepTime is monotone in p), to
  // within 16 tokens; lo when even lo does not fit.
  int64_t LargestFitting(const RankWork& w, int64_t lo, int64_t hi, double limit) const {
    if (hi <= lo) return lo;
    if (StepTime(w, hi) <= limit) return hi;
    while (hi - lo > 16) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (StepTime(w, mid) <= limit) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // Predicted step time of a rank running its sequences plus a `prefill`-token chunk.
  double StepTime(const RankWork& w, int64_t prefill) const {
    const ModelSpec& m = cost_->model();
    // Running sequences decode one token each, except those mid-prefill, whose next chunk is part
    // of `prefill` and attends to the context they already hold.
    const int64_t prefilling =
        std::clamp<int64_t>(w.prefilling, 0, std::max<int64_t>(0, w.running));
    const int64_t decodes = std::max<int64_t>(0, w.running - prefilling);
    const double chunk_context = prefilling > 0 ? std::max(0.0, w.prefill_context_tokens) : 0.0;
    const double decode_context = std::max(0.0, w.context_tokens - chunk_context);
    const double d = static_cast<double>(decodes);
    const double p = static_cast<double>(prefill);
    RankBatch b;
    b.tokens = std::max<int64_t>(1, decodes + prefill);
    b.sequences = std::max<int64_t>(1, decodes + (prefill > 0 ? 1 : 0));
    b.logits = b.sequences;
    b.decode_attn_pairs = std::max(1.0, d + decode_context);
    b.attn_pairs = b.decode_attn_pairs + p * (chunk_context + (p + 1.0) / 2.0);
    b.kv_read_tokens = b.decode_attn_pairs + chunk_context + p;
    return cost_->RankStepEstimate(b, static_cast<double>(b.tokens) * m.top_k, ranks_, async_);
  }

  const CostModel* cost_;
  int ranks_;
  bool async_;  // the engines' CPU overhead hides behind the GPU step (StepDeps)
  CoordinatedOptions o_;
};

}  // namespace

FactoryResult NewCoordinatedBudget(const Params& p, const StepDeps& deps) {
  CoordinatedOptions o;
  o.stretch = p.GetDouble("stretch", o.stretch);
  o.min_chunk = p.GetInt("min_chunk", o.min_chunk);
  o.max_step = p.GetDouble("max_step_ms", 0) / 1000.0;
  o.drain_steps = p.GetInt("drain_steps", o.drain_steps, 0, int64_t{1} << 30);
  o.backlog_steps = p.GetDouble("backlog_steps", o.backlog_steps);
  o.fill = p.GetBool("fill", o.fill);
  if (!(o.stretch >= 1)) return InvalidArgument("'stretch' must be >= 1");
  if (o.min_chunk < 0) return InvalidArgument("'min_chunk' must be >= 0 (tokens)");
  if (!(o.max_step >= 0)) return InvalidArgument("'max_step_ms' must be >= 0");
  if (!(o.backlog_steps >= 0)) return InvalidArgument("'backlog_steps' must be >= 0 (0 = off)");
  if (deps.cost_model == nullptr) {
    return InvalidArgument("needs a cost model (StepDeps::cost_model is null)");
  }
  return std::unique_ptr<StepPolicy>(std::make_unique<CoordinatedBudgetPolicy>(
      deps.cost_model, deps.ranks, deps.async_scheduling, o));
}

}  // namespace gimbal::step_internal
