#include "sim/rebalancer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace gimbal::sim {

void ReadPlacementSpec(const YamlReader& stack, const std::string& key, PlacementSpec* out) {
  *out = PlacementSpec{};
  if (!stack.Has(key)) return;
  const YamlReader node = stack.Child(key);
  if (node.node().IsScalar()) {
    out->policy = node.Scalar();
    return;
  }
  if (!node.IsMap()) {
    stack.Fail("expected a placement policy name or a map with 'policy'", key);
    return;
  }
  out->policy = node.String("policy", std::nullopt);
  out->interval_steps = node.Int("interval_steps", out->interval_steps, 1);
  if (node.Has("window_steps") && node.Has("decay")) {
    node.Fail("give either window_steps (sliding window) or decay (exponential decay), not both",
              "decay");
  }
  if (node.Has("decay")) {
    out->stats.mode = RoutingStatsOptions::Mode::kDecay;
    out->stats.decay = node.Double("decay", std::nullopt, 0, 1);
    if (out->stats.decay <= 0 || out->stats.decay >= 1) {
      node.Fail("expected a number in (0, 1)", "decay");
    }
  } else {
    out->stats.mode = RoutingStatsOptions::Mode::kWindow;
    out->stats.window_steps = static_cast<int>(node.Int("window_steps", 1000, 1, 1 << 20));
  }
  if (node.Has("migration")) {
    out->migration = node.Enum("migration", "blocking", {"blocking", "overlapped"}) == "overlapped"
                         ? MigrationMode::kOverlapped
                         : MigrationMode::kBlocking;
  }
  out->migration_link_share = node.Double("migration_link_share", 0.25, 0, 1);
  if (node.Has("migration_link_share") &&
      (out->migration_link_share <= 0 || out->migration_link_share >= 1)) {
    node.Fail("expected a number in (0, 1)", "migration_link_share");
  }
  out->alpha = node.Double("alpha", -1, -1, 1e6);
  out->beta = node.Double("beta", 1, 0, 1e6);
  out->expert_groups = static_cast<int>(node.Int("expert_groups", 1, 1, 1 << 16));
  out->first_rebalance_steps = node.Int("first_rebalance_steps", 0, 0);
  static const std::vector<std::string> reserved = {
      "policy",        "interval_steps",       "window_steps", "decay",
      "migration",     "migration_link_share", "alpha",        "beta",
      "expert_groups", "first_rebalance_steps"};
  for (const std::string& k : node.Keys()) {
    if (std::find(reserved.begin(), reserved.end(), k) != reserved.end()) continue;
    const YAML::Node v = node.node()[k];
    if (!v.IsScalar()) {
      node.Fail("placement policy parameters must be single values", k);
      return;
    }
    out->params.Set(k, v.Scalar());
  }
}

Status CheckPlacementSpec(const PlacementSpec& spec) {
  if (spec.interval_steps < 1) return InvalidArgument("placement interval_steps must be >= 1");
  if (spec.first_rebalance_steps < 0 || spec.first_rebalance_steps > spec.interval_steps) {
    return InvalidArgument(fmt::format(
        "placement first_rebalance_steps must be in [0, interval_steps = {}] (0: the policy's "
        "default), got {}",
        spec.interval_steps, spec.first_rebalance_steps));
  }
  if (!spec.dynamic()) {
    if (!spec.params.values().empty()) {
      return InvalidArgument("placement policy 'static' takes no parameters");
    }
    return Status::Ok();
  }
  auto p = MakePlacementPolicy(spec.policy, spec.params);
  if (!p.ok()) {
    return InvalidArgument(
        fmt::format("{}; 'static' keeps the initial placement", p.status().message()));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

SourceStatsAccumulator::SourceStatsAccumulator(int sources, int classes, int layers, int experts,
                                               int top_k, RoutingStatsOptions options)
    : sources_(sources),
      classes_(classes),
      layers_(layers),
      experts_(experts),
      top_k_(top_k),
      options_(options) {
  GIMBAL_CHECK(sources > 0 && classes > 0 && layers > 0 && experts > 0 && top_k > 0,
               "SourceStatsAccumulator needs positive dimensions");
  if (options_.mode == RoutingStatsOptions::Mode::kWindow) {
    GIMBAL_CHECK(options_.window_steps > 0, "window_steps must be positive");
    ring_.assign(static_cast<size_t>(options_.window_steps) * sources * classes, 0.0);
    ring_epoch_.assign(static_cast<size_t>(options_.window_steps), -1);
  } else {
    GIMBAL_CHECK(options_.decay > 0 && options_.decay <= 1, "decay must be in (0, 1]");
  }
}

SourceStatsAccumulator::Epoch& SourceStatsAccumulator::EpochFor(const ExpertPopularity& pop) {
  auto it = epochs_.find(pop.epoch());
  if (it != epochs_.end()) return it->second;
  // A new epoch: drop the ones that no longer contribute.
  if (options_.mode == RoutingStatsOptions::Mode::kWindow) {
    for (auto e = epochs_.begin(); e != epochs_.end();) {
      if (std::find(ring_epoch_.begin(), ring_epoch_.end(), e->first) == ring_epoch_.end()) {
        e = epochs_.erase(e);
      } else {
        ++e;
      }
    }
  } else {
    double total = 0;
    for (const auto& [id, e] : epochs_) {
      for (double v : e.tokens) total += v;
    }
    for (auto e = epochs_.begin(); e != epochs_.end();) {
      double mass = 0;
      for (double v : e->second.tokens) mass += v;
      if (mass <= 1e-12 * total) {
        e = epochs_.erase(e);
      } else {
        ++e;
      }
    }
  }
  GIMBAL_CHECK(pop.classes() == classes_ && pop.layers() == layers_ && pop.experts() == experts_,
               "popularity shape does not match the statistics");
  Epoch& e = epochs_[pop.epoch()];
  e.rows = pop.rows();
  if (options_.mode == RoutingStatsOptions::Mode::kDecay) {
    e.tokens.assign(static_cast<size_t>(sources_) * classes_, 0.0);
  }
  return e;
}

void SourceStatsAccumulator::RecordStep(std::span<const double> class_tokens,
                                        const ExpertPopularity& pop) {
  const size_t n = static_cast<size_t>(sources_) * classes_;
  GIMBAL_CHECK(class_tokens.size() == n, "class_tokens has the wrong size");
  if (options_.mode == RoutingStatsOptions::Mode::kWindow) {
    // Overwrite the oldest entry first, so EpochFor sees the window as it will be.
    ring_epoch_[ring_next_] = -1;
    EpochFor(pop);
    std::copy(class_tokens.begin(), class_tokens.end(),
              ring_.begin() + static_cast<ptrdiff_t>(ring_next_ * n));
    ring_epoch_[ring_next_] = pop.epoch();
    ring_next_ = (ring_next_ + 1) % ring_epoch_.size();
  } else {
    Epoch& cur = EpochFor(pop);
    for (auto& [id, e] : epochs_) {
      for (double& v : e.tokens) v *= options_.decay;
    }
    for (size_t i = 0; i < n; ++i) cur.tokens[i] += class_tokens[i];
  }
  ++steps_;
}

SourceExpertCounts SourceStatsAccumulator::Materialise() const {
  SourceExpertCounts a = SourceExpertCounts::Zeros(layers_, sources_, experts_);
  const size_t n = static_cast<size_t>(sources_) * classes_;
  for (const auto& [id, e] : epochs_) {
    std::vector<double> t;
    if (options_.mode == RoutingStatsOptions::Mode::kWindow) {
      t.assign(n, 0.0);
      for (size_t i = 0; i < ring_epoch_.size(); ++i) {
        if (ring_epoch_[i] != id) continue;
        const double* step = ring_.data() + i * n;
        for (size_t j = 0; j < n; ++j) t[j] += step[j];
      }
    } else {
      t = e.tokens;
    }
    for (int l = 0; l < layers_; ++l) {
      for (int s = 0; s < sources_; ++s) {
        double* out = a.counts.data() + a.Index(l, s, 0);
        for (int c = 0; c < classes_; ++c) {
          const double w = t[static_cast<size_t>(s) * classes_ + c] * top_k_;
          if (w <= 0) continue;
          const double* p = e.rows.data() + (static_cast<size_t>(c) * layers_ + l) * experts_;
          for (int x = 0; x < experts_; ++x) out[x] += w * p[x];
        }
      }
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------

MigrationCost ComputeMigration(const Placement& from, const Placement& to,
                               const ClusterSpec& cluster, const CostModel& cost) {
  GIMBAL_CHECK(from.layers == to.layers && from.experts == to.experts && from.gpus == to.gpus &&
                   from.slots_per_gpu == to.slots_per_gpu,
               "placements of different shapes");
  MigrationCost m;
  const int G = from.gpus;
  const int gpn = std::max(1, cluster.hardware.gpus_per_node);
  const double bytes = cluster.model.ExpertParams() * cluster.model.weight_bytes;
  std::vector<double> send_nv(G, 0.0), recv_nv(G, 0.0), send_nic(G, 0.0), recv_nic(G, 0.0);
  std::vector<double> sent(G, 0.0);  // all bytes sent per GPU, to spread copies
  std::vector<int> old_count(static_cast<size_t>(from.experts) * G), new_count(old_count.size());
  for (int l = 0; l < from.layers; ++l) {
    std::fill(old_count.begin(), old_count.end(), 0);
    std::fill(new_count.begin(), new_count.end(), 0);
    for (int s = 0; s < from.slots(); ++s) {
      old_count[static_cast<size_t>(from.Expert(l, s)) * G + from.GpuOfSlot(s)]++;
      new_count[static_cast<size_t>(to.Expert(l, s)) * G + to.GpuOfSlot(s)]++;
    }
    for (int x = 0; x < from.experts; ++x) {
      const int* had = old_count.data() + static_cast<size_t>(x) * G;
      const int* has = new_count.data() + static_cast<size_t>(x) * G;
      for (int g = 0; g < G; ++g) {
        const int copies = has[g] - had[g];
        if (copies <= 0) continue;
        m.experts_moved += copies;
        m.bytes += copies * bytes;
        if (had[g] > 0) continue;  // another replica on the same GPU: an HBM copy
        // Source: a GPU that held x, on g's node if possible, the one that has sent least.
        int best = -1;
        bool best_local = false;
        for (int h = 0; h < G; ++h) {
          if (had[h] <= 0 || h == g) continue;
          const bool local = h / gpn == g / gpn;
          if (best < 0 || (local && !best_local) || (local == best_local && sent[h] < sent[best])) {
            best = h;
            best_local = local;
          }
        }
        GIMBAL_CHECK(best >= 0, "an expert with no replica in the old placement");
        const double b = copies * bytes;
        sent[best] += b;
        if (best_local) {
          send_nv[best] += b;
          recv_nv[g] += b;
        } else {
          send_nic[best] += b;
          recv_nic[g] += b;
        }
      }
    }
  }
  for (int g = 0; g < G; ++g) {
    m.nvlink_bytes_max = std::max({m.nvlink_bytes_max, send_nv[g], recv_nv[g]});
    m.nic_bytes_max = std::max({m.nic_bytes_max, send_nic[g], recv_nic[g]});
  }
  m.seconds = cost.AllToAllTime(m.nvlink_bytes_max, m.nic_bytes_max);
  return m;
}

PlacementTopology SimTopology(const ClusterSpec& cluster, const PlacementSpec& spec) {
  PlacementTopology t;
  t.gpus = cluster.dp;
  const int gpn = cluster.hardware.gpus_per_node;
  t.gpus_per_node = (gpn > 0 && gpn < cluster.dp && cluster.dp % gpn == 0) ? gpn : 0;
  const double nv = cluster.hardware.gpu.nvlink_bandwidth;
  const double nic = cluster.hardware.gpu.nic_bandwidth;
  t.beta = spec.beta;
  t.alpha = spec.alpha >= 0 ? spec.alpha : (nv > 0 ? std::min(1.0, nic / nv) * spec.beta : 0.2);
  t.alpha = std::min(t.alpha, t.beta);
  t.expert_groups = spec.expert_groups;
  t.expert_bytes = cluster.model.ExpertParams() * cluster.model.weight_bytes;
  return t;
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<Rebalancer>> Rebalancer::Create(const PlacementSpec& spec,
                                                       const Cluster& cluster) {
  GIMBAL_RETURN_IF_ERROR(CheckPlacementSpec(spec));
  if (!spec.dynamic()) return InvalidArgument("placement policy 'static' needs no rebalancer");
  auto policy = MakePlacementPolicy(spec.policy, spec.params);
  if (!policy.ok()) return policy.status();
  const PlacementTopology topo = SimTopology(cluster.spec(), spec);
  GIMBAL_RETURN_IF_ERROR(topo.Validate());
  // The sliding window keeps each step's tokens per (source, class): allocated up front.
  constexpr int64_t kMaxWindowCells = int64_t{1} << 24;  // 128 MiB of doubles
  const int64_t cells = int64_t{spec.stats.window_steps} * cluster.ranks() *
                        static_cast<int64_t>(cluster.spec().classes.size());
  if (spec.stats.mode == RoutingStatsOptions::Mode::kWindow && cells > kMaxWindowCells) {
    return InvalidArgument(fmt::format(
        "placement window_steps {} x {} ranks x {} traffic classes is {} cells, more than the {} "
        "the window may hold; use fewer window_steps, or decay",
        spec.stats.window_steps, cluster.ranks(), cluster.spec().classes.size(), cells,
        kMaxWindowCells));
  }
  return std::unique_ptr<Rebalancer>(new Rebalancer(spec, cluster, std::move(*policy)));
}

Rebalancer::Rebalancer(const PlacementSpec& spec, const Cluster& cluster,
                       std::unique_ptr<PlacementPolicy> policy)
    : spec_(spec),
      policy_(std::move(policy)),
      topology_(SimTopology(cluster.spec(), spec)),
      stats_(cluster.ranks(), static_cast<int>(cluster.spec().classes.size()),
             cluster.spec().model.moe_layers(), cluster.spec().model.experts,
             cluster.spec().model.top_k, spec.stats),
      counter_(spec.interval_steps - spec.first_rebalance()) {}

double Rebalancer::AfterStep(Cluster& cluster, const StepCost& cost, double now) {
  double extra = 0;
  if (pending_) {
    const double s = spec_.migration_link_share;
    const double slow = cost.all_to_all * s / (1 - s);
    extra += slow;
    history_.back().charged_seconds += slow;
    pending_left_ -= cost.duration + slow;
    if (pending_left_ <= 0) {
      pending_ = false;
      const Status st = cluster.SetPlacement(std::move(pending_placement_));
      GIMBAL_CHECK(st.ok(), st.message());
    }
  }
  stats_.RecordStep(cluster.class_tokens(), cluster.popularity());
  RecordClassNodes(cluster);
  ++steps_;
  if (++counter_ >= spec_.interval_steps) {
    if (!pending_) {
      counter_ = 0;
      Rebalance(cluster, now + cost.duration + extra, &extra);
    } else if (spec_.vllm_timing()) {
      ++wait_steps_;  // the counter stays due: the next step tries again
    } else {
      counter_ = 0;
      ++skipped_;
    }
  }
  charged_ += extra;
  return extra;
}

void Rebalancer::Rebalance(Cluster& cluster, double now, double* extra) {
  const SourceExpertCounts a = stats_.Materialise();
  Result<Placement> plan = policy_->Plan(a, cluster.placement(), topology_);
  if (!plan.ok()) {
    ++failed_;
    last_error_ = plan.status().message();
    return;
  }
  const MigrationCost m =
      ComputeMigration(cluster.placement(), *plan, cluster.spec(), cluster.cost_model());
  RebalanceRecord r;
  r.step = steps_;
  r.time = now;
  r.experts_migrated = m.experts_moved;
  r.bytes = m.bytes;
  r.copy_seconds = m.experts_moved > 0 ? m.seconds : 0;
  if (spec_.migration_mode() == MigrationMode::kBlocking || r.copy_seconds <= 0) {
    r.charged_seconds = r.copy_seconds;
    *extra += r.copy_seconds;
    const Status st = cluster.SetPlacement(std::move(*plan));
    GIMBAL_CHECK(st.ok(), st.message());
  } else {
    pending_ = true;
    pending_placement_ = std::move(*plan);
    pending_left_ = r.copy_seconds / spec_.migration_link_share;
  }
  const int classes = static_cast<int>(cluster.spec().classes.size());
  const int nodes = cluster.spec().nodes();
  class_node_tokens_.resize(static_cast<size_t>(classes) * nodes, 0.0);
  r.class_node_share.assign(classes, std::vector<double>(nodes, 0.0));
  for (int c = 0; c < classes; ++c) {
    double sum = 0;
    for (int n = 0; n < nodes; ++n) sum += class_node_tokens_[static_cast<size_t>(c) * nodes + n];
    for (int n = 0; n < nodes && sum > 0; ++n) {
      r.class_node_share[c][n] = class_node_tokens_[static_cast<size_t>(c) * nodes + n] / sum;
    }
  }
  const double total = cluster.tokens_total() - total_at_last_;
  r.cross_node_fraction = total > 0 ? (cluster.tokens_inter_node() - inter_at_last_) / total : 0;
  std::fill(class_node_tokens_.begin(), class_node_tokens_.end(), 0.0);
  inter_at_last_ = cluster.tokens_inter_node();
  total_at_last_ = cluster.tokens_total();
  history_.push_back(r);
}

void Rebalancer::RecordClassNodes(const Cluster& cluster) {
  const int classes = static_cast<int>(cluster.spec().classes.size());
  const int nodes = cluster.spec().nodes();
  const int gpn = cluster.spec().hardware.gpus_per_node;
  class_node_tokens_.resize(static_cast<size_t>(classes) * nodes, 0.0);
  const std::vector<double>& t = cluster.class_tokens();
  for (int r = 0; r < cluster.ranks(); ++r) {
    const int n = std::min(nodes - 1, r / std::max(1, gpn));
    for (int c = 0; c < classes; ++c) {
      class_node_tokens_[static_cast<size_t>(c) * nodes + n] +=
          t[static_cast<size_t>(r) * classes + c];
    }
  }
}

void Rebalancer::Report(nlohmann::ordered_json& s) const {
  int64_t experts = 0;
  double bytes = 0;
  nlohmann::ordered_json hist = nlohmann::ordered_json::array();
  for (const RebalanceRecord& r : history_) {
    experts += r.experts_migrated;
    bytes += r.bytes;
    hist.push_back({{"step", r.step},
                    {"time_s", r.time},
                    {"experts_migrated", r.experts_migrated},
                    {"migration_bytes", r.bytes},
                    {"copy_time_s", r.copy_seconds},
                    {"migration_time_s", r.charged_seconds},
                    {"cross_node_fraction", r.cross_node_fraction},
                    {"class_node_share", r.class_node_share}});
  }
  const double n = static_cast<double>(history_.size());
  s["placement_policy"] = spec_.policy;
  s["placement_migration"] =
      spec_.migration_mode() == MigrationMode::kBlocking ? "blocking" : "overlapped";
  s["rebalances"] = history_.size();
  s["rebalances_skipped"] = skipped_;
  if (spec_.vllm_timing()) s["rebalance_wait_steps"] = wait_steps_;
  s["rebalances_failed"] = failed_;
  s["experts_migrated"] = experts;
  s["migration_bytes"] = bytes;
  s["migration_time_s"] = charged_;
  s["experts_migrated_per_rebalance"] = n > 0 ? static_cast<double>(experts) / n : 0.0;
  s["migration_bytes_per_rebalance"] = n > 0 ? bytes / n : 0.0;
  s["rebalance_history"] = hist;
  if (!last_error_.empty()) s["rebalance_last_error"] = last_error_;
}

}  // namespace gimbal::sim
