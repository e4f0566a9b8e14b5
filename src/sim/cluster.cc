#include "sim/cluster.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sim/step_kernels.h"

namespace gimbal::sim {

namespace {
// KV-cache blocks over all ranks, at most: about 3 GB of block records. One H200 rank of
// Qwen3-30B-A3B holds about 10^5 blocks of 16 tokens, so 64 ranks of it need a tenth of this.
constexpr int64_t kMaxKvBlocks = int64_t{1} << 26;
}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::Create(const ClusterSpec& spec,
                                                 const QueuePolicy* queue) {
  const ModelSpec& m = spec.model;
  if (spec.dp <= 0) return InvalidArgument("cluster.dp must be positive");
  if (m.experts % spec.dp != 0) {
    return InvalidArgument(fmt::format("model {} has {} experts, which do not divide over {} GPUs",
                                       m.name, m.experts, spec.dp));
  }
  if (spec.classes.empty()) return InvalidArgument("at least one traffic class is needed");
  const int slots = m.experts / spec.dp + spec.redundant_slots_per_gpu;
  auto kv = KvCapacityTokens(m, spec.hardware.gpu, spec.engine, slots);
  if (!kv.ok()) return kv.status();
  const int64_t blocks = *kv / spec.engine.block_size;
  // Every block is simulated (40-odd bytes each, and a cache entry), on every rank.
  if (blocks > kMaxKvBlocks / spec.dp) {
    return InvalidArgument(fmt::format(
        "{} KV-cache blocks per rank ({} tokens of {}-token blocks) on {} ranks is more than the "
        "{} blocks a simulation may hold; lower engine.kv_capacity_tokens (or the GPU's "
        "memory_gib, which it is derived from when 0)",
        blocks, *kv, spec.engine.block_size, spec.dp, kMaxKvBlocks));
  }
  // With prefix caching one block is vLLM's reserved null block, so at least two are needed.
  const int64_t reserved = spec.engine.enable_prefix_caching ? 1 : 0;
  if (blocks <= reserved) {
    return InvalidArgument(fmt::format("{} KV-cache block(s) fit on the GPU; at least {} needed",
                                       blocks, reserved + 1));
  }
  std::unique_ptr<Cluster> c(new Cluster(spec, CostModel(m, spec.hardware), queue, blocks));
  c->kv_capacity_tokens_ = (blocks - reserved) * spec.engine.block_size;
  GIMBAL_RETURN_IF_ERROR(c->SetPlacement(
      Placement::Contiguous(m.moe_layers(), m.experts, spec.dp, spec.redundant_slots_per_gpu)));
  return c;
}

Cluster::Cluster(ClusterSpec spec, CostModel cost, const QueuePolicy* queue, int64_t kv_blocks)
    : spec_(std::move(spec)), cost_(std::move(cost)) {
  EngineLimits limits;
  limits.max_num_batched_tokens = spec_.engine.max_num_batched_tokens;
  limits.max_num_seqs = spec_.engine.max_num_seqs;
  limits.block_size = spec_.engine.block_size;
  limits.kv_blocks = kv_blocks;
  limits.enable_prefix_caching = spec_.engine.enable_prefix_caching;
  limits.reserve_full_isl = spec_.engine.reserve_full_isl;
  limits.async_scheduling = spec_.engine.async_scheduling;
  limits.prefix_hash_tokens = spec_.engine.prefix_hash_tokens;
  limits.cache_aware_admission_window = spec_.engine.cache_aware_admission_window;
  limits.cache_aware_admission_threshold = spec_.engine.cache_aware_admission_threshold;
  for (int r = 0; r < spec_.dp; ++r) engines_.emplace_back(limits, queue);
  const ModelSpec& m = spec_.model;
  popularity_ = std::make_unique<ExpertPopularity>(
      spec_.classes, m.moe_layers(), m.experts, m.top_k, spec_.class_overlap, spec_.routing_seed);
  rank_times_.resize(spec_.dp);
  moe_pressure_.assign(spec_.dp, 1.0);
  gpu_load_ema_.assign(spec_.dp, 0.0);
  last_gpu_load_.assign(spec_.dp, 0.0);
  layer_max_.assign(m.moe_layers(), 0.0);
  layer_mean_.assign(m.moe_layers(), 0.0);
  const size_t C = spec_.classes.size();
  class_tokens_.assign(spec_.dp * C, 0.0);
  class_total_.assign(C, 0.0);
  route_tokens_.assign(spec_.dp * C, 0.0);
  route_total_.assign(C, 0.0);
  for (auto* v : {&attn_, &dense_, &shared_, &head_, &own_expert_}) v->assign(spec_.dp, 0.0);
  graph_max_tokens_ =
      spec_.engine.cuda_graph_padding ? MaxCudaGraphCaptureSize(spec_.engine.max_num_seqs) : 0;
  const size_t L = static_cast<size_t>(m.moe_layers());
  const size_t G = static_cast<size_t>(spec_.dp);
  for (int g = 0; g < spec_.dp; ++g) node_of_.push_back(g / spec_.hardware.gpus_per_node);
  node_sent_.assign(L * static_cast<size_t>(spec_.nodes()), 0.0);
  for (auto* v : {&gpu_pairs_, &sent_, &out_intra_, &out_inter_, &in_intra_, &in_inter_}) {
    v->assign(L * G, 0.0);
  }
  expert_time_.assign(L * G, 0.0);
  moe_layers_.assign(L, MoeLayer{});
  layer_sent_.assign(3 * L, 0.0);
  slot_tokens_.assign(L * G * (m.experts / spec_.dp + spec_.redundant_slots_per_gpu), 0.0);
  active_scratch_.assign(static_cast<size_t>(m.experts / spec_.dp + spec_.redundant_slots_per_gpu),
                         0.0);
}

Status Cluster::SetPlacement(Placement p) {
  GIMBAL_RETURN_IF_ERROR(p.Validate());
  if (p.gpus != spec_.dp || p.layers != spec_.model.moe_layers() ||
      p.experts != spec_.model.experts) {
    return InvalidArgument(fmt::format(
        "placement shape {} layers x {} experts on {} GPUs does not match the cluster ({} x {} on "
        "{})",
        p.layers, p.experts, p.gpus, spec_.model.moe_layers(), spec_.model.experts, spec_.dp));
  }
  const int slots_per_gpu = spec_.model.experts / spec_.dp + spec_.redundant_slots_per_gpu;
  if (p.slots_per_gpu != slots_per_gpu) {
    return InvalidArgument(fmt::format(
        "placement has {} slots per GPU; the cluster has {} ({} experts over {} GPUs + {} "
        "redundant)",
        p.slots_per_gpu, slots_per_gpu, spec_.model.experts, spec_.dp,
        spec_.redundant_slots_per_gpu));
  }
  if (tables_ == nullptr) {
    tables_ =
        std::make_unique<RoutingTables>(*popularity_, p, spec_.dp, spec_.hardware.gpus_per_node);
  } else {
    // Layers the new placement leaves as they were keep their table entries.
    tables_->Rebuild(*popularity_, p, &placement_);
  }
  placement_ = std::move(p);
  moe_valid_ = false;
  return Status::Ok();
}

void Cluster::DriftPopularity() {
  popularity_->Drift(spec_.drift.fraction);
  tables_->Rebuild(*popularity_, placement_);
  moe_valid_ = false;
}

bool Cluster::HasWork() const {
  for (const auto& e : engines_) {
    if (e.HasWork()) return true;
  }
  return false;
}

std::vector<StepPlan> Cluster::Plan() {
  // The shared step counter of prefill_schedule_interval: 0 at a wave's first step.
  step_counter_ = wave_idle_ ? 0 : step_counter_ + 1;
  const int64_t interval = spec_.engine.prefill_schedule_interval;
  last_throttled_ = interval > 1 && spec_.dp > 1 && step_counter_ % interval != 0;
  std::vector<StepPlan> plans = ScheduleRanks();
  auto idle = [&] {
    return std::all_of(plans.begin(), plans.end(), [](const StepPlan& p) { return p.empty(); });
  };
  // Under async scheduling an empty plan may release requests that finished in the last step
  // (they held their slots and blocks while it was made); what waited on them can run now, so
  // plan once more, as the same step, before calling the cluster idle.
  if (idle() && HasWork()) plans = ScheduleRanks();
  wave_idle_ = idle();
  return plans;
}

std::vector<StepPlan> Cluster::ScheduleRanks() {
  auto defer = [this](size_t r) {
    return last_throttled_ && !engines_[r].prefill_capacity_bound();
  };
  std::vector<StepPlan> plans;
  plans.reserve(engines_.size());
  if (step_policy_ == nullptr) {
    for (size_t r = 0; r < engines_.size(); ++r) {
      plans.push_back(engines_[r].Schedule(-1, defer(r)));
    }
  } else {
    work_.resize(engines_.size());
    budgets_.resize(engines_.size());
    for (size_t r = 0; r < engines_.size(); ++r) {
      const EngineScheduler& e = engines_[r];
      work_[r].running = static_cast<int64_t>(e.num_running());
      work_[r].context_tokens = static_cast<double>(e.used_blocks() * e.limits().block_size);
      work_[r].pending_prefill = e.pending_prefill_tokens();
      const auto in_progress = e.prefill_in_progress();
      work_[r].prefilling = in_progress.sequences;
      work_[r].prefill_context_tokens = static_cast<double>(in_progress.context_tokens);
    }
    step_policy_->Budgets(work_, spec_.engine.max_num_batched_tokens, budgets_);
    for (size_t r = 0; r < engines_.size(); ++r) {
      plans.push_back(engines_[r].Schedule(budgets_[r], defer(r)));
    }
  }
  return plans;
}

double Cluster::ExpertTimeOf(int l, int g, double pairs) {
  // The expected active replicas matter only while the GPU is memory-bound: ExpertTime is a
  // roofline max(compute, weights read), and the weights read grow with the active count, which
  // is at most the GPU's slots. When even all slots active leave it compute-bound, any count
  // gives the same time.
  const int spg = tables_->slots_per_gpu();
  const double all_active = cost_.ExpertTime(pairs, spg * (1 + 1e-9));
  if (all_active == cost_.ExpertTime(pairs, 0)) return all_active;
  // Expected active replicas: a slot expecting n tokens is idle with probability e^-n.
  const double* n = slot_tokens_.data() + static_cast<size_t>(l) * tables_->slots() +
                    static_cast<size_t>(g) * spg;
  return cost_.ExpertTime(pairs, SumActive(n, active_scratch_.data(), spg));
}

void Cluster::PriceMoe(const std::vector<double>& route, const std::vector<double>& route_total) {
  const ModelSpec& m = spec_.model;
  const int R = spec_.dp;
  const int C = static_cast<int>(spec_.classes.size());
  const int G = R;
  const int k = m.top_k;
  const int gpn = spec_.hardware.gpus_per_node;
  // All MoE layers at once, one pass per active (source, class) row of the routing tables (long
  // loops the compiler vectorises), then the per-layer maxima. Every sum adds its terms in the
  // same order as a layer-by-layer walk would (sources, then classes, then GPUs), so the figures
  // do not depend on this layout.
  const int L = m.moe_layers();
  const int nodes = tables_->nodes();
  const size_t LG = static_cast<size_t>(L) * G;
  const size_t LN = static_cast<size_t>(L) * nodes;
  for (auto* v : {&gpu_pairs_, &out_intra_, &out_inter_, &in_intra_, &in_inter_, &layer_sent_}) {
    std::fill(v->begin(), v->end(), 0.0);
  }
  double* pairs = gpu_pairs_.data();
  double* sent = sent_.data();
  double* node_sent = node_sent_.data();
  // layer_sent_: per layer, tokens sent in all (including same-GPU), within nodes, across nodes.
  double* layer_sent = layer_sent_.data();
  for (int r = 0; r < R; ++r) {
    bool any = false;
    const int node_r = node_of_[r];
    const int first_r = node_r * gpn;
    const int last_r = std::min(G, first_r + gpn);
    // sent: what r sends its own node's GPUs one by one, [l * width + g - first_r]; node_sent:
    // what it sends each node. The first active class sets them (a · x is what 0 + a · x is:
    // never -0, as t > 0 and reach >= 0), the others add to them.
    const int width = last_r - first_r;
    // Within a node a token goes to each GPU holding one of its experts; across nodes it goes
    // once per destination node and is forwarded there over NVLink (DeepEP's normal kernels).
    for (int c = 0; c < C; ++c) {
      const double t = route[static_cast<size_t>(r) * C + c];
      if (t <= 0) continue;
      const bool first = !any;
      any = true;
      const double* share = tables_->ShareRow(r, c).data();
      const double tk = t * k;
      Axpy(pairs, share, tk, LG);
      // Only the GPUs of r's own node read what r sends them one by one.
      const auto own_reach = tables_->OwnNodeReachRow(r, c);  // [l * width + g - first_r]
      GIMBAL_CHECK(own_reach.size() == static_cast<size_t>(L) * width,
                   "routing tables and cluster disagree on a rank's node");
      if (first) {
        for (size_t i = 0; i < own_reach.size(); ++i) sent[i] = t * own_reach[i];
      } else {
        Axpy(sent, own_reach.data(), t, own_reach.size());
      }
      if (nodes > 1) {
        const double* reach_node = tables_->ReachNodeRow(r, c).data();
        if (first) {
          for (size_t i = 0; i < LN; ++i) node_sent[i] = t * reach_node[i];
        } else {
          Axpy(node_sent, reach_node, t, LN);
        }
      }
    }
    if (!any) continue;
    for (int l = 0; l < L; ++l) {
      const double* s = sent + static_cast<size_t>(l) * width;  // s[g - first_r]
      double* in_intra = in_intra_.data() + static_cast<size_t>(l) * G;
      double* in_inter = in_inter_.data() + static_cast<size_t>(l) * G;
      double total = layer_sent[3 * l], intra = layer_sent[3 * l + 1];
      double out = 0;
      for (int g = first_r; g < last_r; ++g) {
        const double v = s[g - first_r];
        total += v;
        if (g == r) continue;
        out += v;
        in_intra[g] += v;
        intra += v;
      }
      out_intra_[static_cast<size_t>(l) * G + r] = out;
      double inter = layer_sent[3 * l + 2], out_inter = 0;
      for (int n = 0; n < nodes; ++n) {
        if (n == node_r) continue;
        const double v = node_sent[static_cast<size_t>(l) * nodes + n];
        total += v;
        inter += v;
        out_inter += v;
        const int first = n * gpn;
        const int last = std::min(G, first + gpn);
        const double each = v / (last - first);  // spread over the node's GPUs
        for (int g = first; g < last; ++g) in_inter[g] += each;
      }
      out_inter_[static_cast<size_t>(l) * G + r] = out_inter;
      layer_sent[3 * l] = total;
      layer_sent[3 * l + 1] = intra;
      layer_sent[3 * l + 2] = inter;
    }
  }
  // Each slot's expected tokens, all layers: Σ over classes of class tokens × slot popularity.
  std::fill(slot_tokens_.begin(), slot_tokens_.end(), 0.0);
  for (int c = 0; c < C; ++c) {
    const double t = route_total[c];
    if (t <= 0) continue;
    const double* load = tables_->SlotLoadRow(c).data();
    double* slots = slot_tokens_.data();
    Axpy(slots, load, t, slot_tokens_.size());
  }
  const double dbytes = cost_.DispatchBytesPerToken();
  const double cbytes = cost_.CombineBytesPerToken();
  for (int l = 0; l < L; ++l) {
    MoeLayer& ml = moe_layers_[l];
    ml.sent_total = layer_sent[3 * l];
    ml.sent_intra = layer_sent[3 * l + 1];
    ml.sent_inter = layer_sent[3 * l + 2];
    const double* gpu_pairs = pairs + static_cast<size_t>(l) * G;
    double* expert_time = expert_time_.data() + static_cast<size_t>(l) * G;
    double max_expert = 0, sum_pairs = 0, max_pairs = 0;
    for (int g = 0; g < G; ++g) {
      expert_time[g] = ExpertTimeOf(l, g, gpu_pairs[g]);
      max_expert = std::max(max_expert, expert_time[g]);
      sum_pairs += gpu_pairs[g];
      max_pairs = std::max(max_pairs, gpu_pairs[g]);
    }
    ml.max_expert = max_expert;
    ml.sum_pairs = sum_pairs;
    ml.max_pairs = max_pairs;
    double intra = 0, inter = 0;
    for (size_t g = static_cast<size_t>(l) * G, end = g + G; g < end; ++g) {
      intra = std::max({intra, out_intra_[g], in_intra_[g]});
      inter = std::max({inter, out_inter_[g], in_inter_[g]});
    }
    ml.comm = cost_.AllToAllTime(intra * dbytes, inter * dbytes) +
              cost_.AllToAllTime(intra * cbytes, inter * cbytes);
  }
}

StepCost Cluster::Cost(const std::vector<StepPlan>& plans) {
  const ModelSpec& m = spec_.model;
  const int R = spec_.dp;
  const int C = static_cast<int>(spec_.classes.size());
  const int G = R;

  // CUDA-graph padding: every rank runs the largest padded count when all counts fit a graph.
  int64_t padded = 0;
  if (graph_max_tokens_ > 0) {
    int64_t largest = 1;  // an idle rank's dummy batch has one token
    for (int r = 0; r < R; ++r) largest = std::max(largest, plans[r].batch.tokens);
    if (largest <= graph_max_tokens_) padded = CudaGraphPaddedTokens(largest);
  }

  // Per-rank attention and dense parts; idle ranks run a one-token dummy batch (or the padded
  // count).
  std::fill(class_tokens_.begin(), class_tokens_.end(), 0.0);
  std::fill(class_total_.begin(), class_total_.end(), 0.0);
  double max_attn_dense = 0, max_attn_moe = 0, max_head = 0;
  int64_t max_seqs = 0;
  for (int r = 0; r < R; ++r) {
    RankBatch b = plans[r].batch;
    if (plans[r].empty()) {
      b.tokens = 1;
      b.kv_read_tokens = 1;
      b.attn_pairs = 1;
      b.decode_attn_pairs = 1;
    }
    if (padded > b.tokens) {
      // Padding slots: one query token with one context token each, no logits.
      const int64_t extra = padded - b.tokens;
      b.tokens = padded;
      b.kv_read_tokens += static_cast<double>(extra);
      b.attn_pairs += static_cast<double>(extra);
      b.decode_attn_pairs += static_cast<double>(extra);
    }
    attn_[r] = cost_.AttentionTime(b);
    dense_[r] = cost_.DenseFfnTime(b.tokens);
    shared_[r] = cost_.SharedExpertTime(b.tokens);
    head_[r] = cost_.HeadTime(b);
    max_attn_dense = std::max(max_attn_dense, attn_[r] + dense_[r]);
    max_attn_moe = std::max(max_attn_moe, attn_[r] + shared_[r]);
    max_head = std::max(max_head, head_[r]);
    max_seqs = std::max(max_seqs, plans[r].batch.sequences);
    for (const ScheduledSeq& s : plans[r].seqs) {
      const int c = std::clamp<int>(s.traffic_class, 0, C - 1);
      class_tokens_[static_cast<size_t>(r) * C + c] += static_cast<double>(s.new_tokens);
      class_total_[c] += static_cast<double>(s.new_tokens);
    }
  }
  // The tokens the experts see: the real ones, plus under padding each rank's padding slots,
  // spread over classes like the rank's own tokens (else like the step's, else class 0).
  const std::vector<double>* route = &class_tokens_;
  const std::vector<double>* route_total = &class_total_;
  if (padded > 0) {
    double step_real = 0;
    for (double v : class_total_) step_real += v;
    std::copy(class_total_.begin(), class_total_.end(), route_total_.begin());
    for (int r = 0; r < R; ++r) {
      const double* own = class_tokens_.data() + static_cast<size_t>(r) * C;
      double* out = route_tokens_.data() + static_cast<size_t>(r) * C;
      double real = 0;
      for (int c = 0; c < C; ++c) real += own[c];
      const double extra = static_cast<double>(padded) - real;
      for (int c = 0; c < C; ++c) {
        double share = 0;
        if (real > 0) {
          share = own[c] / real;
        } else if (step_real > 0) {
          share = class_total_[c] / step_real;
        } else {
          share = c == 0 ? 1.0 : 0.0;
        }
        out[c] = own[c] + extra * share;
        route_total_[c] += extra * share;
      }
    }
    route = &route_tokens_;
    route_total = &route_total_;
  }

  StepCost cost;
  cost.attn_dense = m.dense_layers * max_attn_dense + m.moe_layers() * max_attn_moe + max_head;
  std::fill(own_expert_.begin(), own_expert_.end(), 0.0);
  std::fill(last_gpu_load_.begin(), last_gpu_load_.end(), 0.0);

  // The MoE layers' loads and all-to-all depend only on the tokens per (rank, class) and the
  // routing tables: a step that repeats the last one's (steady decoding, CUDA-graph padding)
  // reuses its pricing. The accumulations below run every step, in the same order either way.
  const int L = m.moe_layers();
  moe_key_.clear();
  moe_key_.insert(moe_key_.end(), route->begin(), route->end());
  moe_key_.insert(moe_key_.end(), route_total->begin(), route_total->end());
  if (!moe_valid_ || moe_key_ != moe_last_key_) {
    PriceMoe(*route, *route_total);
    moe_last_key_.swap(moe_key_);
    moe_valid_ = true;
  }
  for (int l = 0; l < L; ++l) {
    const MoeLayer& ml = moe_layers_[l];
    tok_total_ += ml.sent_total;
    tok_intra_ += ml.sent_intra;
    tok_inter_ += ml.sent_inter;
    const double* gpu_pairs = gpu_pairs_.data() + static_cast<size_t>(l) * G;
    const double* expert_time = expert_time_.data() + static_cast<size_t>(l) * G;
    for (int g = 0; g < G; ++g) {
      own_expert_[g] += expert_time[g];
      last_gpu_load_[g] += gpu_pairs[g];
      gpu_load_ema_[g] = 0.98 * gpu_load_ema_[g] + 0.02 * expert_time[g];
    }
    layer_max_[l] += ml.max_pairs;
    layer_mean_[l] += ml.sum_pairs / G;
    // With micro-batch overlap (DeepSeek's dual-batch overlap, vLLM's DBO) communication hides
    // behind compute: `comm_overlap` is the fraction of the shorter of the two that is hidden.
    const double compute = max_attn_moe + ml.max_expert;
    const double a2a = ml.comm - spec_.hardware.comm_overlap * std::min(compute, ml.comm);
    cost.experts += ml.max_expert;
    cost.all_to_all += a2a;
  }
  // CPU overhead: serial, or hidden behind the GPU step under async scheduling.
  const double gpu = cost.attn_dense + cost.experts + cost.all_to_all;
  cost.cpu_overhead = cost_.StepOverhead(max_seqs);
  cost.duration = CostModel::StepTime(gpu, cost.cpu_overhead, spec_.engine.async_scheduling);
  cost.overhead = cost.duration - gpu;
  cost.padded_tokens = padded;

  // Breakdown per rank and smoothed MoE pressure.
  double ema_mean = 0;
  for (double v : gpu_load_ema_) ema_mean += v / G;
  for (int r = 0; r < R; ++r) {
    RankTimes& t = rank_times_[r];
    const double own_attn = m.dense_layers * (attn_[r] + dense_[r]) +
                            m.moe_layers() * (attn_[r] + shared_[r]) + head_[r];
    const double busy = own_attn + own_expert_[r] + cost.overhead;
    t.attn_dense += own_attn;
    t.experts += own_expert_[r];
    t.all_to_all += cost.all_to_all;
    t.busy += busy;
    t.straggler_wait += std::max(0.0, cost.duration - busy - cost.all_to_all);
    t.steps += 1;
    if (plans[r].empty()) t.dummy_steps += 1;
    const double kv = static_cast<double>(engines_[r].used_blocks()) /
                      static_cast<double>(engines_[r].usable_blocks());
    t.peak_kv_usage = std::max(t.peak_kv_usage, kv);
    moe_pressure_[r] = ema_mean > 0 ? gpu_load_ema_[r] / ema_mean : 1.0;
  }
  return cost;
}

std::vector<std::vector<TokenEvent>> Cluster::Complete(const std::vector<StepPlan>& plans) {
  std::vector<std::vector<TokenEvent>> out(engines_.size());
  for (size_t r = 0; r < engines_.size(); ++r) out[r] = engines_[r].Complete(plans[r]);
  return out;
}

}  // namespace gimbal::sim
