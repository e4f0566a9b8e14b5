#include "policy/placement/gimbal_placement.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "policy/placement/replica_routing.h"
#include "policy/placement/search_state.h"

namespace gimbal {

Result<GimbalPlacementConfig> GimbalPlacementConfig::FromParams(const Params& params) {
  GimbalPlacementConfig c;
  c.weights.load = params.GetDouble("load_weight", c.weights.load);
  c.weights.traffic = params.GetDouble("traffic_weight", c.weights.traffic);
  c.weights.migration = params.GetDouble("migration_weight", c.weights.migration);
  c.max_moves_per_layer = params.GetInt32("max_moves_per_layer", c.max_moves_per_layer);
  c.min_gain = params.GetDouble("min_gain", c.min_gain);
  c.count_slack = params.GetDouble("count_slack", c.count_slack);
  c.search_evals = params.GetInt32("search_evals", c.search_evals);
  c.refine_work = params.GetInt("refine_work", c.refine_work);
  c.emit_routes = params.GetBool("emit_routes", c.emit_routes);
  c.balance_target = params.GetDouble("balance_target", c.balance_target);
  c.repair_moves = params.GetInt32("repair_moves", c.repair_moves);
  c.node_slack = params.GetDouble("node_slack", c.node_slack);
  c.gpu_slack = params.GetDouble("gpu_slack", c.gpu_slack);
  c.locality_replicas = params.GetInt32("locality_replicas", c.locality_replicas);
  c.locality_spare_load = params.GetDouble("locality_spare_load", c.locality_spare_load);
  c.count_must_gain = params.GetBool("count_must_gain", c.count_must_gain);
  GIMBAL_RETURN_IF_ERROR(params.Validate("placement policy 'gimbal'"));
  // Bounded above like the topology's costs (kMaxHopCost): 1e308 overflowed every score.
  for (const double w : {c.weights.load, c.weights.traffic, c.weights.migration}) {
    if (!(w >= 0 && w <= kMaxObjectiveWeight)) {
      return InvalidArgument(fmt::format(
          "load_weight, traffic_weight and migration_weight must be in [0, {:g}], got {:g}",
          kMaxObjectiveWeight, w));
    }
  }
  // The search budgets bound a plan's time: refine_work 9e18 ran for minutes per layer.
  if (c.search_evals > kMaxSearchEvals || c.refine_work > kMaxRefineWork) {
    return InvalidArgument(fmt::format("search_evals must be at most {} and refine_work at most {}",
                                       kMaxSearchEvals, kMaxRefineWork));
  }
  if (c.min_gain < 0 || c.count_slack < 0 || c.search_evals < 0 || c.refine_work < 0 ||
      c.repair_moves < 0 || c.gpu_slack < 0 || c.locality_replicas < 0 ||
      c.locality_spare_load < 0) {
    return InvalidArgument(
        "min_gain, count_slack, search_evals, refine_work, repair_moves, gpu_slack, "
        "locality_replicas and locality_spare_load must be >= 0");
  }
  return c;
}

namespace {

using placement_internal::SearchState;

constexpr double kEps = 1e-12;

bool WithinBudget(int moves, int budget) {
  return budget < 0 || moves <= budget;
}

// Whether every swap stays within the budget: a swap adds at most two copies (each expert at most
// one, on the GPU it enters), so SwapMoves need not be computed then.
bool SwapsWithinBudget(const SearchState& st, int budget) {
  return budget < 0 || st.moves() + 2 <= budget;
}

// A tournament over experts 0 .. n-1: best() is the first expert (lowest index) whose key no other
// beats, as a scan keeping the first strict improvement finds it; `beats(u, v)` says u's key is
// strictly better than v's (a strict weak order). Changing one expert's key costs O(log n).
template <typename Beats>
class Tournament {
 public:
  Tournament(int n, Beats beats) : beats_(beats) {
    while (size_ < n) size_ *= 2;
    t_.assign(2 * static_cast<size_t>(size_), -1);
    for (int x = 0; x < n; ++x) t_[size_ + x] = x;
    for (int i = size_ - 1; i >= 1; --i) t_[i] = Pick(t_[2 * i], t_[2 * i + 1]);
  }
  int best() const { return t_[1]; }
  void Changed(int x) {
    for (int i = (size_ + x) / 2; i >= 1; i /= 2) t_[i] = Pick(t_[2 * i], t_[2 * i + 1]);
  }

 private:
  // l's experts all come before r's: r wins only when strictly better.
  int Pick(int l, int r) const {
    if (l < 0 || r < 0) return l < 0 ? r : l;
    return beats_(r, l) ? r : l;
  }
  Beats beats_;
  int size_ = 1;
  std::vector<int> t_;
};

// 1. Replica counts: from the coldest replicated expert to the hottest, into the cold expert's
// slot that gives the lowest surrogate objective; with count_must_gain, only when that objective
// is below the current one.
void AdjustCounts(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  const int budget = cfg.max_moves_per_layer;
  // Per expert: its per-replica load, and the one after losing a replica (replicas >= 2). Only
  // the two experts of a replacement change, so only theirs are recomputed.
  std::vector<double> per(p.experts), per_less(p.experts);
  auto update = [&](int x) {
    per[x] = p.totals[x] / st.replicas(x);
    per_less[x] = st.replicas(x) >= 2 ? p.totals[x] / (st.replicas(x) - 1) : 0.0;
  };
  for (int x = 0; x < p.experts; ++x) update(x);
  // hot: the first expert with the highest per-replica load; cold: the first, other than hot,
  // with at least two replicas and the lowest per_less (scans over all experts, kept as
  // tournaments; `out` takes hot out of the cold one while it is read).
  int out = -1;
  auto can_give = [&](int x) { return x != out && st.replicas(x) >= 2; };
  Tournament hottest(p.experts, [&](int u, int v) { return per[u] > per[v]; });
  Tournament coldest(p.experts, [&](int u, int v) {
    return can_give(u) && (!can_give(v) || per_less[u] < per_less[v]);
  });
  for (int iter = 0; iter < p.slots(); ++iter) {
    const int hot = hottest.best();
    out = hot;
    coldest.Changed(hot);
    int cold = coldest.best();
    out = -1;
    coldest.Changed(hot);
    if (cold >= 0 && (cold == hot || st.replicas(cold) < 2)) cold = -1;
    if (hot < 0 || cold < 0) return;
    if (!(per[hot] > (1 + cfg.count_slack) * p.totals[cold] / (st.replicas(cold) - 1))) return;
    int best_slot = -1;
    double best =
        cfg.count_must_gain ? st.Objective() - kEps : std::numeric_limits<double>::infinity();
    for (int slot = 0; slot < p.slots(); ++slot) {
      if (st.map()[slot] != cold || st.count(hot, st.Gpu(slot)) > 0) continue;
      const SearchState::ReplaceEval r = st.ReplaceValue(slot, hot);
      if (WithinBudget(r.moves, budget) && r.objective < best) {
        best = r.objective;
        best_slot = slot;
      }
    }
    if (best_slot < 0) return;
    st.Replace(best_slot, hot);
    for (int x : {cold, hot}) {
      update(x);
      hottest.Changed(x);
      coldest.Changed(x);
    }
  }
}

// Tries swapping slot a with every slot of the GPUs in `targets`; applies the best improving one.
bool BestSwap(const LayerProblem& p, int budget, SearchState& st, int a,
              const std::vector<int>& targets, int& evals) {
  double best = -kEps;
  int best_b = -1;
  const bool any_swap = SwapsWithinBudget(st, budget);
  for (int g2 : targets) {
    for (int b = g2 * p.slots_per_gpu; b < (g2 + 1) * p.slots_per_gpu; ++b) {
      if (!st.SwapValid(a, b)) continue;
      if (!any_swap && !WithinBudget(st.moves() + st.SwapMoves(a, b), budget)) continue;
      const auto [d, dm] = st.SwapDelta(a, b);
      ++evals;
      if (d < best && WithinBudget(st.moves() + dm, budget)) {
        best = d;
        best_b = b;
      }
    }
  }
  if (best_b < 0) return false;
  st.ApplySwap(a, best_b);
  return true;
}

// 3. Local search on the surrogate.
void LocalSearch(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  const int budget = cfg.max_moves_per_layer;
  int evals = 0;
  std::vector<int> order(p.experts), targets;
  std::vector<std::pair<double, int>> by_traffic(p.experts);
  const double mean = p.total / p.gpus;
  for (int round = 0; round < 8 && evals < cfg.search_evals; ++round) {
    bool improved = false;
    // Locality: experts with the most traffic first (ties in expert order, as a stable sort of
    // 0 .. experts-1 gives), towards their heaviest sources.
    for (int x = 0; x < p.experts; ++x) by_traffic[x] = {st.traffic(x), x};
    std::sort(by_traffic.begin(), by_traffic.end(), [](const auto& u, const auto& v) {
      return u.first > v.first || (u.first == v.first && u.second < v.second);
    });
    for (int i = 0; i < p.experts; ++i) order[i] = by_traffic[i].second;
    for (int x : order) {
      if (evals >= cfg.search_evals || st.traffic(x) <= 0) break;
      if (budget >= 0 && st.moves() >= budget) break;
      int best_g = -1, best_n = -1;
      for (int g = 0; g < p.gpus; ++g) {
        if (st.count(x, g) == 0 && (best_g < 0 || p.GpuDemand(x, g) > p.GpuDemand(x, best_g))) {
          best_g = g;
        }
      }
      for (int n = 0; n < p.nodes; ++n) {
        if (best_n < 0 || p.NodeDemand(x, n) > p.NodeDemand(x, best_n)) best_n = n;
      }
      if (best_g < 0) continue;
      // The GPU with the most demand, and every GPU of the node with the most demand.
      targets.assign(1, best_g);
      for (int g = 0; g < p.gpus; ++g) {
        if (p.node_of_gpu[g] == best_n && g != best_g && st.count(x, g) == 0) targets.push_back(g);
      }
      for (int a = 0; a < p.slots(); ++a) {
        if (st.map()[a] != x) continue;
        if (BestSwap(p, budget, st, a, targets, evals)) {
          improved = true;
          break;
        }
      }
    }
    // Balance: off the most loaded GPU, preferably within its node.
    for (int it = 0; it < p.gpus && evals < cfg.search_evals; ++it) {
      const int gmax = st.max_gpu();
      if (st.gpu_load(gmax) <= mean * (1 + 1e-3)) break;
      targets.clear();
      for (int g = 0; g < p.gpus; ++g) {
        if (g != gmax && p.node_of_gpu[g] == p.node_of_gpu[gmax]) targets.push_back(g);
      }
      std::vector<int> by_load(p.gpus);
      std::iota(by_load.begin(), by_load.end(), 0);
      std::partial_sort(by_load.begin(), by_load.begin() + std::min(3, p.gpus), by_load.end(),
                        [&](int a, int b) { return st.gpu_load(a) < st.gpu_load(b); });
      for (int k = 0; k < std::min(3, p.gpus); ++k) {
        if (p.node_of_gpu[by_load[k]] != p.node_of_gpu[gmax]) targets.push_back(by_load[k]);
      }
      bool moved = false;
      for (int a = gmax * p.slots_per_gpu; a < (gmax + 1) * p.slots_per_gpu && !moved; ++a) {
        moved = BestSwap(p, budget, st, a, targets, evals);
      }
      if (!moved) break;
      improved = true;
    }
    if (!improved) break;
  }
}

// 2. Node locality: an expert whose demand is mostly on a node without a replica swaps
// its least useful replica (on the node where it has least demand) with a replica on that node,
// when both nodes stay under node_slack above the mean node load (or get lighter), both GPUs under
// gpu_slack above the mean GPU load (or lighter), and the surrogate's traffic drops. Candidates
// are ranked by node demand; the best few are checked on the surrogate.
void NodeLocality(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  if (p.nodes < 2 || cfg.node_slack < 0) return;
  const int gpn = p.gpus / p.nodes;
  const double mean = p.total / p.gpus;
  if (!(mean > 0)) return;
  const double node_cap = mean * gpn * (1 + cfg.node_slack);
  const double gpu_cap = mean * (1 + cfg.gpu_slack);
  const int budget = cfg.max_moves_per_layer;
  const int nodes = p.nodes;
  auto D = [&](int x, int n) { return p.NodeDemand(x, n); };
  std::vector<double> node_load(nodes, 0.0);
  for (int g = 0; g < p.gpus; ++g) node_load[p.node_of_gpu[g]] += st.gpu_load(g);
  // (gain, slot) candidates for the best few.
  std::vector<std::pair<double, int>> cands;
  std::vector<std::pair<double, int>> order;
  for (int round = 0; round < 2; ++round) {
    // Experts by their potential: demand on the best node without a replica, minus the demand on
    // the node of their least useful replica.
    order.clear();
    for (int x = 0; x < p.experts; ++x) {
      double best_free = -1, worst_held = std::numeric_limits<double>::infinity();
      for (int n = 0; n < nodes; ++n) {
        if (st.node_count(x, n) == 0) {
          best_free = std::max(best_free, D(x, n));
        } else {
          worst_held = std::min(worst_held, D(x, n));
        }
      }
      if (best_free > worst_held) order.push_back({best_free - worst_held, x});
    }
    std::sort(order.begin(), order.end(), std::greater<>());
    // The best swap of expert x in the current state: (surrogate change, slot a, slot b).
    struct Pick {
      double v;
      int a, b;
    };
    auto best_for = [&](int x) -> Pick {
      Pick none{0, -1, -1};
      int to = -1, from = -1;
      for (int n = 0; n < nodes; ++n) {
        if (st.node_count(x, n) == 0) {
          if (to < 0 || D(x, n) > D(x, to)) to = n;
        } else if (from < 0 || D(x, n) < D(x, from)) {
          from = n;
        }
      }
      if (to < 0 || from < 0 || D(x, to) <= D(x, from)) return none;
      // x's slot on `from`, on its most loaded GPU.
      int a = -1;
      for (int h = 0; h < p.gpus; ++h) {
        if (p.node_of_gpu[h] != from) continue;
        for (int slot = h * p.slots_per_gpu; slot < (h + 1) * p.slots_per_gpu; ++slot) {
          if (st.map()[slot] == x && (a < 0 || st.gpu_load(h) > st.gpu_load(st.Gpu(a)))) a = slot;
        }
      }
      const int g = st.Gpu(a);
      const double lx = st.SlotLoad(a);
      cands.clear();
      for (int h = to * gpn; h < (to + 1) * gpn; ++h) {
        for (int b = h * p.slots_per_gpu; b < (h + 1) * p.slots_per_gpu; ++b) {
          const int y = st.map()[b];
          const double ly = st.SlotLoad(b);
          const double dl = lx - ly;  // load moving from `from` to `to`
          if (dl > 0 && (node_load[to] + dl > node_cap || st.gpu_load(h) + dl > gpu_cap)) continue;
          if (dl < 0 && (node_load[from] - dl > node_cap || st.gpu_load(g) - dl > gpu_cap)) {
            continue;
          }
          if (!st.SwapValid(a, b)) continue;
          const double gain = D(x, to) - D(x, from) + D(y, from) - D(y, to);
          if (gain > 0) cands.push_back({gain, b});
        }
      }
      if (cands.empty()) return none;
      const size_t keep = std::min<size_t>(cands.size(), 3);
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep),
                        cands.end(), std::greater<>());
      Pick best{-kEps, a, -1};
      for (size_t k = 0; k < keep; ++k) {
        const int b = cands[k].second;
        const int dm = st.SwapMoves(a, b);
        if (!WithinBudget(st.moves() + dm, budget)) continue;
        const double v = p.traffic_coef() * st.SwapTraffic(a, b) + p.move_coef() * dm;
        if (v < best.v) best = {v, a, b};
      }
      return best.b < 0 ? none : best;
    };
    bool any = false;
    for (const auto& [potential, x] : order) {
      if (budget >= 0 && st.moves() + 2 > budget) return;
      const Pick pk = best_for(x);
      if (pk.b < 0) continue;
      const double dl = st.SlotLoad(pk.a) - st.SlotLoad(pk.b);
      node_load[p.node_of_gpu[st.Gpu(pk.b)]] += dl;
      node_load[p.node_of_gpu[st.Gpu(pk.a)]] -= dl;
      st.ApplySwap(pk.a, pk.b);
      any = true;
    }
    if (!any) break;
  }
}

// 1b. Replicas for locality: a redundant replica is re-targeted to an expert with much demand on
// the replica's node and no replica there. Only replicas of experts the balance can spare are
// taken (after losing one, the expert's per-replica load stays at most locality_spare_load x the
// mean slot load), and only when the surrogate objective drops and the surrogate's peak GPU load
// does not rise. Candidates are ranked by node demand gained minus node demand lost; the best few
// are checked on the surrogate and the best improving one is applied; at most
// `locality_replicas` per layer, one copy each.
void LocalityReplicas(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  if (p.nodes < 2 || cfg.locality_replicas <= 0) return;
  const int budget = cfg.max_moves_per_layer;
  const int nodes = p.nodes;
  constexpr int kTop = 2;  // best experts per node
  // Replicas the balance can spare: experts whose replicas stay at most this load after losing one.
  const double spare = p.total / p.slots() * cfg.locality_spare_load;
  // Per node, its kTop experts by demand from it (descending, ties by expert) among those without
  // a replica on the node. A replacement changes the replica counts of one node only (its slot's):
  // there the new expert leaves the eligible ones and the old one may join them. So each node keeps
  // a longer prefix (up to kKeep) of its eligible experts in that order, and a replacement updates
  // it; the node is scanned again only when fewer than kTop remain of a prefix that was cut short.
  constexpr int kKeep = 6;
  struct Prefix {
    std::array<int, kKeep> x;
    int n = 0;
    bool all = false;  // the prefix holds every eligible expert
  };
  std::vector<Prefix> pre(nodes);
  // Whether expert u comes before v on node n: more demand, or as much and a lower index.
  auto before = [&](int n, int u, int v) {
    const double du = p.NodeDemand(u, n), dv = p.NodeDemand(v, n);
    return du > dv || (du == dv && u < v);
  };
  // Adds expert x, eligible on node n, to n's prefix; experts come in index order, so x goes after
  // those with as much demand.
  auto offer = [&](int n, int x) {
    Prefix& q = pre[n];
    const double d = p.NodeDemand(x, n);
    int k = q.n;
    while (k > 0 && d > p.NodeDemand(q.x[k - 1], n)) --k;
    if (k >= kKeep) return;
    for (int j = std::min(q.n, kKeep - 1); j > k; --j) q.x[j] = q.x[j - 1];
    q.x[k] = x;
    q.n = std::min(q.n + 1, kKeep);
  };
  std::vector<int> eligible(nodes);
  auto scan = [&](int n) {
    pre[n].n = 0;
    eligible[n] = 0;
    for (int x = 0; x < p.experts; ++x) {
      if (st.node_count(x, n) != 0) continue;
      ++eligible[n];
      offer(n, x);
    }
    pre[n].all = eligible[n] <= kKeep;
  };
  std::vector<std::array<int, kTop>> top(nodes);
  auto top_of = [&](int n) {
    std::array<int, kTop> t;
    t.fill(-1);
    for (int k = 0; k < kTop && k < pre[n].n; ++k) t[k] = pre[n].x[k];
    return t;
  };
  // Node n after expert `in` got a replica there and `out` lost one.
  auto update = [&](int n, int in, int out) {
    Prefix& q = pre[n];
    int k = 0;
    while (k < q.n && q.x[k] != in) ++k;
    if (k < q.n) {
      for (; k + 1 < q.n; ++k) q.x[k] = q.x[k + 1];
      --q.n;
    }
    if (st.node_count(out, n) == 0) {
      // out's place; it goes in when that is within the prefix, or the prefix is complete.
      k = q.n;
      while (k > 0 && before(n, out, q.x[k - 1])) --k;
      if (k < q.n || q.all) {
        if (q.n < kKeep) {
          ++q.n;
        } else {
          q.all = false;  // full: the last one (or out) drops out
        }
        for (int j = q.n - 1; j > k; --j) q.x[j] = q.x[j - 1];
        if (k < q.n) q.x[k] = out;
      }
    }
    if (q.n < kTop && !q.all) scan(n);
  };
  // All nodes in one pass over the experts (each expert's node counts and demands are adjacent).
  for (int x = 0; x < p.experts; ++x) {
    for (int n = 0; n < nodes; ++n) {
      if (st.node_count(x, n) != 0) continue;
      ++eligible[n];
      offer(n, x);
    }
  }
  for (int n = 0; n < nodes; ++n) {
    pre[n].all = eligible[n] <= kKeep;
    top[n] = top_of(n);
  }
  // Per expert: whether one of its replicas can be spared; a replacement changes two experts.
  std::vector<char> can_spare(p.experts);
  auto update_spare = [&](int c) {
    can_spare[c] = !(st.replicas(c) < 2 || p.totals[c] / (st.replicas(c) - 1) > spare);
  };
  for (int x = 0; x < p.experts; ++x) update_spare(x);
  struct Cand {
    double est;
    int slot, x;
  };
  std::vector<Cand> cands;
  for (int iter = 0; iter < cfg.locality_replicas; ++iter) {
    if (budget >= 0 && st.moves() + 1 > budget) return;
    cands.clear();
    for (int g = 0, a = 0; g < p.gpus; ++g) {
      const int n = p.node_of_gpu[g];
      for (const int end = a + p.slots_per_gpu; a < end; ++a) {
        const int c = st.map()[a];
        if (!can_spare[c]) continue;
        const double loss = st.node_count(c, n) >= 2 ? 0.0 : p.NodeDemand(c, n);
        for (int x : top[n]) {
          if (x < 0) continue;
          const double est = p.NodeDemand(x, n) - loss;
          if (est > 0) cands.push_back({est, a, x});
        }
      }
    }
    if (cands.empty()) return;
    const size_t keep = std::min<size_t>(cands.size(), 6);
    std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep), cands.end(),
                      [](const Cand& u, const Cand& v) { return u.est > v.est; });
    const double peak = st.gpu_load(st.max_gpu());
    double best = st.Objective() - kEps;
    int best_k = -1;
    for (size_t k = 0; k < keep; ++k) {
      const auto [v, moves, new_peak] = st.ReplaceValue(cands[k].slot, cands[k].x);
      const bool ok = WithinBudget(moves, budget) && new_peak <= peak;
      if (ok && v < best) {
        best = v;
        best_k = static_cast<int>(k);
      }
    }
    if (best_k < 0) return;
    const int lost = st.map()[cands[best_k].slot];
    st.Replace(cands[best_k].slot, cands[best_k].x);
    update_spare(lost);
    update_spare(cands[best_k].x);
    const int changed = p.node_of_gpu[st.Gpu(cands[best_k].slot)];
    update(changed, cands[best_k].x, lost);
    top[changed] = top_of(changed);
  }
}

// 4. Balance repair on the surrogate: while the most loaded GPU is above the target, swap one of
// its replicas with a lighter one on another GPU, within its node when such a swap exists (no
// cross-node change), else anywhere. Both GPUs must end below the old peak, so the peak never
// rises. Among the swaps that lower the peak most (within a small tolerance), the one with the
// best objective change is applied.
void RepairBalance(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  const double mean = p.total / p.gpus;
  if (!(mean > 0) || cfg.balance_target < 0) return;
  const double target = mean * (1 + cfg.balance_target);
  const double tol = 0.005 * mean;
  const int budget = cfg.max_moves_per_layer;
  struct Cand {
    int a, b;
    double peak;
  };
  std::vector<Cand> cands;
  std::vector<double> slot_load(p.slots());  // SlotLoad of every slot, in this iteration's state
  std::vector<double> min_load(p.gpus), max_load(p.gpus);  // per GPU: its slots' least and most
  // Swaps keep the replica counts, so each expert's SlotLoad (its load over its replicas) stays.
  std::vector<double> expert_load(p.experts);
  for (int x = 0; x < p.experts; ++x) {
    expert_load[x] = st.replicas(x) > 0 ? p.totals[x] / st.replicas(x) : 0.0;
  }
  for (int iter = 0; iter < 4 * p.slots(); ++iter) {
    const int g = st.max_gpu();
    const double peak = st.gpu_load(g);
    if (peak <= target) return;
    for (int h = 0; h < p.gpus; ++h) {
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (int slot = h * p.slots_per_gpu; slot < (h + 1) * p.slots_per_gpu; ++slot) {
        slot_load[slot] = expert_load[st.map()[slot]];  // st.SlotLoad(slot)
        lo = std::min(lo, slot_load[slot]);
        hi = std::max(hi, slot_load[slot]);
      }
      min_load[h] = lo;
      max_load[h] = hi;
    }
    cands.clear();
    // `low`: the lowest peak among the candidates so far. Only candidates within tol of the final
    // lowest are scored below, and that is at most `low`, so a swap whose peak is above
    // low + tol is left out before its validity checks: the scored candidates, their order and
    // the lowest peak are those of the full list.
    double low = std::numeric_limits<double>::infinity();
    const bool any_swap = SwapsWithinBudget(st, budget);
    for (int pass = 0; pass < 2 && cands.empty(); ++pass) {
      for (int h = 0; h < p.gpus; ++h) {
        if (h == g || (p.node_of_gpu[h] == p.node_of_gpu[g]) != (pass == 0)) continue;
        const double lh = st.gpu_load(h);
        if (lh >= peak - tol) continue;
        for (int a = g * p.slots_per_gpu; a < (g + 1) * p.slots_per_gpu; ++a) {
          const double l1 = slot_load[a];
          // Rounding is monotone, so every b of h has d <= l1 - min_load[h] and
          // d >= l1 - max_load[h]: when these bounds fail the tests below, every b does.
          const double d_most = l1 - min_load[h], d_least = l1 - max_load[h];
          if (d_most <= tol || lh + d_least >= peak - tol || peak - d_most > low + tol) continue;
          const int x1 = st.map()[a];
          for (int b = h * p.slots_per_gpu; b < (h + 1) * p.slots_per_gpu; ++b) {
            // The load tests without a branch each (few swaps pass them all); loads are finite.
            const double d = l1 - slot_load[b];
            const double new_peak = std::max(peak - d, lh + d);
            if (!((d > tol) & (lh + d < peak - tol) & (new_peak <= low + tol))) continue;
            // st.SwapValid(a, b), with the GPUs known (g != h).
            const int x2 = st.map()[b];
            if (x1 == x2 || st.count(x1, h) != 0 || st.count(x2, g) != 0) continue;
            if (!any_swap && !WithinBudget(st.moves() + st.SwapMoves(a, b), budget)) continue;
            cands.push_back({a, b, new_peak});
            low = std::min(low, new_peak);
          }
        }
      }
    }
    if (cands.empty()) return;
    const Cand* best = nullptr;
    double best_score = std::numeric_limits<double>::infinity();
    for (const Cand& c : cands) {
      if (c.peak > low + tol) continue;
      const double score = p.load_coef() * c.peak + p.traffic_coef() * st.SwapTraffic(c.a, c.b) +
                           p.move_coef() * st.SwapMoves(c.a, c.b);
      if (score < best_score) {
        best_score = score;
        best = &c;
      }
    }
    // Scores are finite for inputs that pass the checks; should one not be, the repair stops
    // rather than apply no candidate.
    if (best == nullptr) return;
    st.ApplySwap(best->a, best->b);
  }
}

// Exact-objective evaluations the refinement budget allows on this layer.
int64_t RefineEvals(const LayerProblem& p, const GimbalPlacementConfig& cfg) {
  const int64_t per_eval = static_cast<int64_t>(p.sources) * p.experts + p.slots();
  return cfg.refine_work / per_eval;
}

// Whether step 5 runs on this layer (the layer is small enough).
bool RefineApplies(const LayerProblem& p, const GimbalPlacementConfig& cfg) {
  return RefineEvals(p, cfg) >= 20;
}

// 5. Hill climbing on the exact objective, for layers small enough.
void Refine(const LayerProblem& p, const GimbalPlacementConfig& cfg, std::vector<int32_t>& map) {
  int64_t evals_left = RefineEvals(p, cfg);
  if (!RefineApplies(p, cfg)) return;
  const int budget = cfg.max_moves_per_layer;
  double cur = RouteAndEvaluate(p, map, nullptr).objective;
  auto on_gpu = [&](int x, int g) {
    for (int s = g * p.slots_per_gpu; s < (g + 1) * p.slots_per_gpu; ++s) {
      if (map[s] == x) return true;
    }
    return false;
  };
  auto try_map = [&]() {
    --evals_left;
    const LayerEval e = RouteAndEvaluate(p, map, nullptr);
    if (e.objective < cur - kEps && WithinBudget(e.experts_moved, budget)) {
      cur = e.objective;
      return true;
    }
    return false;
  };
  std::vector<int> replicas(p.experts, 0);
  bool improved = true;
  while (improved && evals_left > 0) {
    improved = false;
    for (int a = 0; a < p.slots() && evals_left > 0; ++a) {
      for (int b = a + 1; b < p.slots() && evals_left > 0; ++b) {
        const int ga = a / p.slots_per_gpu, gb = b / p.slots_per_gpu;
        const int xa = map[a], xb = map[b];
        if (ga == gb || xa == xb || on_gpu(xa, gb) || on_gpu(xb, ga)) continue;
        std::swap(map[a], map[b]);
        if (try_map()) {
          improved = true;
        } else {
          std::swap(map[a], map[b]);
        }
      }
    }
    std::fill(replicas.begin(), replicas.end(), 0);
    for (int32_t x : map) replicas[x]++;
    for (int a = 0; a < p.slots() && evals_left > 0; ++a) {
      const int old = map[a], g = a / p.slots_per_gpu;
      if (replicas[old] < 2) continue;
      for (int x = 0; x < p.experts && evals_left > 0; ++x) {
        if (x == old || on_gpu(x, g)) continue;
        map[a] = x;
        if (try_map()) {
          replicas[old]--;
          replicas[x]++;
          improved = true;
          break;
        }
        map[a] = old;
      }
    }
  }
}

// Steps 1-5 from the current placement; step 1b only when `locality` is set.
std::vector<int32_t> SearchLayer(const LayerProblem& p, const GimbalPlacementConfig& cfg,
                                 bool locality) {
  SearchState st(p, p.current);
  AdjustCounts(p, cfg, st);
  GimbalPlacementConfig search_cfg = cfg;
  if (cfg.max_moves_per_layer > 0) {
    search_cfg.max_moves_per_layer = std::max(0, cfg.max_moves_per_layer - cfg.repair_moves);
  }
  if (locality) LocalityReplicas(p, search_cfg, st);
  NodeLocality(p, search_cfg, st);
  LocalSearch(p, search_cfg, st);
  std::vector<int32_t> map = st.map();
  const double before_repair = st.Objective();
  RepairBalance(p, cfg, st);
  // The repair trades traffic for balance; it stays only when the surrogate objective agrees.
  if (st.Objective() <= before_repair) map = st.map();
  Refine(p, cfg, map);
  return map;
}

// PlanLayerGimbal with the routes (when cfg.emit_routes) appended to `routes` (sources x experts
// of them) instead of LayerPlan::routes. Without exact_current, when the new plan
// wins the hysteresis whatever the current placement's exact figures, LayerPlan::current_eval
// is not computed (its objective and max_load are +infinity).
LayerPlan PlanLayer(const LayerProblem& p, const GimbalPlacementConfig& cfg, SourceRoutes* routes,
                    bool exact_current) {
  std::vector<int32_t> map = SearchLayer(p, cfg, cfg.locality_replicas > 0);
  // On layers small enough for the exact refinement, the even-split surrogate can misjudge a
  // replica re-targeted for locality (one replica is a large share of a GPU's load there): the
  // search also runs without step 1b and the better plan by the objective is kept.
  if (cfg.locality_replicas > 0 && RefineApplies(p, cfg)) {
    std::vector<int32_t> plain = SearchLayer(p, cfg, false);
    const LayerEval a = RouteAndEvaluate(p, map, nullptr);
    const LayerEval b = RouteAndEvaluate(p, plain, nullptr);
    const bool a_ok = WithinBudget(a.experts_moved, cfg.max_moves_per_layer);
    const bool b_ok = WithinBudget(b.experts_moved, cfg.max_moves_per_layer);
    if (b_ok && (!a_ok || b.objective < a.objective)) map = std::move(plain);
  }

  LayerPlan plan;
  if (!cfg.emit_routes) routes = nullptr;
  const size_t routes_before = routes != nullptr ? routes->size() : 0;
  const LayerEval fresh = RouteAndEvaluateInto(p, map, routes);
  const bool fresh_ok = WithinBudget(fresh.experts_moved, cfg.max_moves_per_layer);
  // The hysteresis keeps the current placement unless the new plan's objective is below
  // cur - min_gain |cur| - kEps. With objectives >= 0 that holds for every cur >= give_up below
  // (the relative margin of 1e-6 covers the rounding of that comparison), so the current
  // placement's routing may give up on passes that reach give_up; when all do, the new plan wins
  // and the current figures are not needed. Otherwise the figures are exact when the routing says
  // so, and are evaluated in full when not (a pass within 1e-12 of give_up).
  bool known = false, gave_up = false;
  if (!exact_current && fresh_ok && fresh.objective >= 0 && std::isfinite(fresh.objective) &&
      cfg.min_gain >= 0 && cfg.min_gain < 0.5) {
    const double give_up = (fresh.objective + kEps) / (1 - cfg.min_gain) * (1 + 1e-6) + 1e-9;
    bool exact = false;
    plan.current_eval = placement_internal::RouteAndEvaluateWith(p, p.current, nullptr, true,
                                                                 nullptr, give_up, &exact);
    gave_up = plan.current_eval.objective == std::numeric_limits<double>::infinity();
    known = exact || gave_up;
  }
  if (!known) plan.current_eval = RouteAndEvaluate(p, p.current, nullptr);
  const double cur = plan.current_eval.objective;
  plan.kept_current =
      !gave_up && (!(fresh.objective < cur - cfg.min_gain * std::abs(cur) - kEps) || !fresh_ok);
  if (plan.kept_current) {
    plan.phy2log = p.current;
    if (routes != nullptr) {
      routes->Truncate(routes_before);
      plan.eval = RouteAndEvaluateInto(p, p.current, routes);
    } else {
      plan.eval = plan.current_eval;
    }
  } else {
    plan.phy2log = std::move(map);
    plan.eval = fresh;
  }
  return plan;
}

}  // namespace

LayerPlan PlanLayerGimbal(const LayerProblem& p, const GimbalPlacementConfig& cfg) {
  if (!cfg.emit_routes) return PlanLayer(p, cfg, nullptr, true);
  LayerRoutes routes;
  LayerPlan plan = PlanLayer(p, cfg, &routes, true);
  plan.routes = std::move(routes);
  return plan;
}

Result<Placement> PlanGimbal(const SourceExpertCounts& stats, const Placement& current,
                             const PlacementTopology& topology,
                             const GimbalPlacementConfig& config) {
  // The count values are checked layer by layer as each layer's problem reads them.
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputsButCounts(stats, current, topology));
  Placement out;
  out.layers = current.layers;
  out.experts = current.experts;
  out.gpus = current.gpus;
  out.slots_per_gpu = current.slots_per_gpu;
  out.phy2log.reserve(current.phy2log.size());
  if (config.emit_routes) {
    out.sources = stats.sources;
    // Only multi-replica experts have shares, at most one per slot of theirs and source; their
    // slots number at most twice the redundant ones (each such expert has a base slot and at
    // least one more), and at most all slots.
    const size_t slots = static_cast<size_t>(current.slots());
    const size_t spare = slots - std::min(slots, static_cast<size_t>(current.experts));
    out.source_routes.reserve(
        static_cast<size_t>(stats.layers) * stats.sources * stats.experts,
        static_cast<size_t>(stats.layers) * stats.sources * std::min(slots, 2 * spare));
  }
  LayerProblem p;  // one problem for all layers, its buffers reused
  for (int l = 0; l < stats.layers; ++l) {
    FillLayerProblem(stats, l, current, topology, config.weights, p);
    if (!p.counts_valid) {
      Status bad = stats.Validate();  // names the first bad count, in this layer
      return bad.ok() ? InvalidArgument(fmt::format("routing statistics: bad count in layer {}", l))
                      : bad;
    }
    // The layer's routes go straight into out.source_routes.
    const LayerPlan plan =
        PlanLayer(p, config, config.emit_routes ? &out.source_routes : nullptr, false);
    out.phy2log.insert(out.phy2log.end(), plan.phy2log.begin(), plan.phy2log.end());
  }
  return out;
}

}  // namespace gimbal
