#include "policy/placement/gimbal_placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

namespace gimbal {

Result<GimbalPlacementConfig> GimbalPlacementConfig::FromParams(const Params& params) {
  GimbalPlacementConfig c;
  c.weights.load = params.GetDouble("load_weight", c.weights.load);
  c.weights.traffic = params.GetDouble("traffic_weight", c.weights.traffic);
  c.weights.migration = params.GetDouble("migration_weight", c.weights.migration);
  c.max_moves_per_layer =
      static_cast<int>(params.GetInt("max_moves_per_layer", c.max_moves_per_layer));
  c.min_gain = params.GetDouble("min_gain", c.min_gain);
  c.count_slack = params.GetDouble("count_slack", c.count_slack);
  c.search_evals = static_cast<int>(params.GetInt("search_evals", c.search_evals));
  c.refine_work = params.GetInt("refine_work", c.refine_work);
  c.emit_routes = params.GetBool("emit_routes", c.emit_routes);
  c.balance_target = params.GetDouble("balance_target", c.balance_target);
  c.repair_moves = static_cast<int>(params.GetInt("repair_moves", c.repair_moves));
  c.node_slack = params.GetDouble("node_slack", c.node_slack);
  c.gpu_slack = params.GetDouble("gpu_slack", c.gpu_slack);
  GIMBAL_RETURN_IF_ERROR(params.Validate("placement policy 'gimbal'"));
  if (c.weights.load < 0 || c.weights.traffic < 0 || c.weights.migration < 0) {
    return InvalidArgument("placement policy 'gimbal': weights must be >= 0");
  }
  if (c.min_gain < 0 || c.count_slack < 0 || c.search_evals < 0 || c.refine_work < 0 ||
      c.repair_moves < 0 || c.gpu_slack < 0) {
    return InvalidArgument(
        "placement policy 'gimbal': min_gain, count_slack, search_evals, refine_work, repair_moves "
        "and gpu_slack must be >= 0");
  }
  return c;
}

namespace {

constexpr double kEps = 1e-12;

// The local search's state and its surrogate objective: per-GPU load with tokens split evenly
// over replicas, traffic with every token at its nearest replica, and copies against the current
// placement.
class SearchState {
 public:
  SearchState(const LayerProblem& p, std::vector<int32_t> map) : p_(p), map_(std::move(map)) {
    cnt_.assign(static_cast<size_t>(p.experts) * p.gpus, 0);
    ncnt_.assign(static_cast<size_t>(p.experts) * p.nodes, 0);
    r_.assign(p.experts, 0);
    for (int slot = 0; slot < p.slots(); ++slot) Count(map_[slot], Gpu(slot), +1);
    RecomputeAll();
  }

  const std::vector<int32_t>& map() const { return map_; }
  int moves() const { return moves_; }
  int replicas(int x) const { return r_[x]; }
  int count(int x, int g) const { return cnt_[static_cast<size_t>(x) * p_.gpus + g]; }
  int node_count(int x, int n) const { return ncnt_[static_cast<size_t>(x) * p_.nodes + n]; }
  double gpu_load(int g) const { return lp_[g]; }
  double traffic(int x) const { return traffic_[x]; }
  int max_gpu() const { return top_[0].second; }
  int Gpu(int slot) const { return slot / p_.slots_per_gpu; }

  double Objective() const {
    return p_.load_coef() * top_[0].first + p_.traffic_coef() * traffic_sum_ +
           p_.move_coef() * moves_;
  }

  // Traffic cost of expert x if GPU `rem` lost a replica and `add` gained one (-1: none).
  double Traffic(int x, int rem, int add) const {
    const int* c = &cnt_[static_cast<size_t>(x) * p_.gpus];
    const int* nc = &ncnt_[static_cast<size_t>(x) * p_.nodes];
    const int rem_node = rem >= 0 ? p_.node_of_gpu[rem] : -1;
    const int add_node = add >= 0 ? p_.node_of_gpu[add] : -1;
    double t = 0;
    for (int s = 0; s < p_.sources; ++s) {
      const double a = p_.A(s, x);
      if (a <= 0) continue;
      const int gs = p_.source_gpu[s];
      if (c[gs] - (gs == rem) + (gs == add) > 0) continue;
      const int n = p_.node_of_gpu[gs];
      t += a * (nc[n] - (n == rem_node) + (n == add_node) > 0 ? p_.alpha : p_.beta);
    }
    return t;
  }

  // A swap exchanges the experts of two slots on different GPUs; it must not put an expert twice
  // on one GPU.
  bool SwapValid(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    return g1 != g2 && x1 != x2 && count(x1, g2) == 0 && count(x2, g1) == 0;
  }

  // Copies a valid swap adds (may be negative when it restores the current placement).
  int SwapMoves(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    return MoveDelta(x1, g1, -1) + MoveDelta(x1, g2, +1) + MoveDelta(x2, g2, -1) +
           MoveDelta(x2, g1, +1);
  }

  // Per-replica load of the expert in `slot` (even split).
  double SlotLoad(int slot) const { return p_.totals[map_[slot]] / r_[map_[slot]]; }

  // Traffic change of a valid swap.
  double SwapTraffic(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    return Traffic(x1, g1, g2) - traffic_[x1] + Traffic(x2, g2, g1) - traffic_[x2];
  }

  // (objective change, moves change) of a valid swap.
  std::pair<double, int> SwapDelta(int a, int b) const {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    const double l1 = p_.totals[x1] / r_[x1], l2 = p_.totals[x2] / r_[x2];
    const double n1 = lp_[g1] - l1 + l2, n2 = lp_[g2] - l2 + l1;
    double other = -std::numeric_limits<double>::infinity();
    for (const auto& [v, g] : top_) {
      if (g >= 0 && g != g1 && g != g2) {
        other = v;
        break;
      }
    }
    const double new_max = std::max({n1, n2, other});
    const double dt = Traffic(x1, g1, g2) - traffic_[x1] + Traffic(x2, g2, g1) - traffic_[x2];
    const int dm = MoveDelta(x1, g1, -1) + MoveDelta(x1, g2, +1) + MoveDelta(x2, g2, -1) +
                   MoveDelta(x2, g1, +1);
    return {p_.load_coef() * (new_max - top_[0].first) + p_.traffic_coef() * dt +
                p_.move_coef() * dm,
            dm};
  }

  void ApplySwap(int a, int b) {
    const int x1 = map_[a], x2 = map_[b], g1 = Gpu(a), g2 = Gpu(b);
    const double l1 = p_.totals[x1] / r_[x1], l2 = p_.totals[x2] / r_[x2];
    Count(x1, g1, -1);
    Count(x2, g2, -1);
    Count(x1, g2, +1);
    Count(x2, g1, +1);
    map_[a] = x2;
    map_[b] = x1;
    lp_[g1] += l2 - l1;
    lp_[g2] += l1 - l2;
    for (int x : {x1, x2}) {
      const double t = Traffic(x, -1, -1);
      traffic_sum_ += t - traffic_[x];
      traffic_[x] = t;
    }
    UpdateTop();
  }

  // Puts expert x in `slot` (replica counts change); recomputes the affected state.
  void Replace(int slot, int x) {
    const int old = map_[slot], g = Gpu(slot);
    if (old == x) return;
    AddExpertLoad(old, -1);
    AddExpertLoad(x, -1);
    Count(old, g, -1);
    Count(x, g, +1);
    map_[slot] = x;
    AddExpertLoad(old, +1);
    AddExpertLoad(x, +1);
    for (int y : {old, x}) {
      const double t = Traffic(y, -1, -1);
      traffic_sum_ += t - traffic_[y];
      traffic_[y] = t;
    }
    UpdateTop();
  }

 private:
  int MoveDelta(int x, int g, int d) const {
    const size_t i = static_cast<size_t>(x) * p_.gpus + g;
    return std::max(0, cnt_[i] + d - p_.current_count[i]) - std::max(0, cnt_[i] - p_.current_count[i]);
  }
  // Adds (sign +1) or removes (-1) expert x's even-split load on the GPUs holding it.
  void AddExpertLoad(int x, int sign) {
    if (r_[x] <= 0) return;
    const double per = sign * p_.totals[x] / r_[x];
    const int* c = &cnt_[static_cast<size_t>(x) * p_.gpus];
    for (int g = 0; g < p_.gpus; ++g) {
      if (c[g] > 0) lp_[g] += per * c[g];
    }
  }
  void Count(int x, int g, int d) {
    const size_t i = static_cast<size_t>(x) * p_.gpus + g;
    moves_ += MoveDelta(x, g, d);
    cnt_[i] += d;
    ncnt_[static_cast<size_t>(x) * p_.nodes + p_.node_of_gpu[g]] += d;
    r_[x] += d;
  }
  void RecomputeAll() {
    lp_.assign(p_.gpus, 0.0);
    for (int slot = 0; slot < p_.slots(); ++slot) {
      const int x = map_[slot];
      lp_[Gpu(slot)] += p_.totals[x] / r_[x];
    }
    traffic_.assign(p_.experts, 0.0);
    traffic_sum_ = 0;
    for (int x = 0; x < p_.experts; ++x) {
      traffic_[x] = Traffic(x, -1, -1);
      traffic_sum_ += traffic_[x];
    }
    UpdateTop();
  }
  void UpdateTop() {
    top_.fill({-std::numeric_limits<double>::infinity(), -1});
    for (int g = 0; g < p_.gpus; ++g) {
      std::pair<double, int> e{lp_[g], g};
      for (auto& t : top_) {
        if (e.first > t.first) std::swap(e, t);
      }
    }
  }

  const LayerProblem& p_;
  std::vector<int32_t> map_;
  std::vector<int> cnt_, ncnt_, r_;
  std::vector<double> lp_, traffic_;
  double traffic_sum_ = 0;
  int moves_ = 0;
  std::array<std::pair<double, int>, 3> top_;
};

bool WithinBudget(int moves, int budget) { return budget < 0 || moves <= budget; }

// 1. Replica counts: from the coldest replicated expert to the hottest.
void AdjustCounts(const LayerProblem& p, const GimbalPlacementConfig& cfg, SearchState& st) {
  const int budget = cfg.max_moves_per_layer;
  for (int iter = 0; iter < p.slots(); ++iter) {
    int hot = -1, cold = -1;
    for (int x = 0; x < p.experts; ++x) {
      if (hot < 0 || p.totals[x] / st.replicas(x) > p.totals[hot] / st.replicas(hot)) hot = x;
    }
    for (int x = 0; x < p.experts; ++x) {
      if (x == hot || st.replicas(x) < 2) continue;
      if (cold < 0 ||
          p.totals[x] / (st.replicas(x) - 1) < p.totals[cold] / (st.replicas(cold) - 1)) {
        cold = x;
      }
    }
    if (hot < 0 || cold < 0) return;
    if (!(p.totals[hot] / st.replicas(hot) >
          (1 + cfg.count_slack) * p.totals[cold] / (st.replicas(cold) - 1))) {
      return;
    }
    int best_slot = -1;
    double best = std::numeric_limits<double>::infinity();
    for (int slot = 0; slot < p.slots(); ++slot) {
      if (st.map()[slot] != cold || st.count(hot, st.Gpu(slot)) > 0) continue;
      st.Replace(slot, hot);
      const double v = st.Objective();
      const bool ok = WithinBudget(st.moves(), budget);
      st.Replace(slot, cold);
      if (ok && v < best) {
        best = v;
        best_slot = slot;
      }
    }
    if (best_slot < 0) return;
    st.Replace(best_slot, hot);
  }
}

// Tries swapping slot a with every slot of the GPUs in `targets`; applies the best improving one.
bool BestSwap(const LayerProblem& p, int budget, SearchState& st, int a,
              const std::vector<int>& targets, int& evals) {
  double best = -kEps;
  int best_b = -1;
  for (int g2 : targets) {
    for (int b = g2 * p.slots_per_gpu; b < (g2 + 1) * p.slots_per_gpu; ++b) {
      if (!st.SwapValid(a, b) || !WithinBudget(st.moves() + st.SwapMoves(a, b), budget)) continue;
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
  std::vector<double> dg(p.gpus), dn(p.nodes);
  std::vector<int> order(p.experts), targets;
  const double mean = p.total / p.gpus;
  for (int round = 0; round < 8 && evals < cfg.search_evals; ++round) {
    bool improved = false;
    // Locality: experts with the most traffic first, towards their heaviest sources.
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return st.traffic(a) > st.traffic(b); });
    for (int x : order) {
      if (evals >= cfg.search_evals || st.traffic(x) <= 0) break;
      if (budget >= 0 && st.moves() >= budget) break;
      std::fill(dg.begin(), dg.end(), 0.0);
      std::fill(dn.begin(), dn.end(), 0.0);
      for (int s = 0; s < p.sources; ++s) {
        dg[p.source_gpu[s]] += p.A(s, x);
        dn[p.node_of_gpu[p.source_gpu[s]]] += p.A(s, x);
      }
      int best_g = -1, best_n = -1;
      for (int g = 0; g < p.gpus; ++g) {
        if (st.count(x, g) == 0 && (best_g < 0 || dg[g] > dg[best_g])) best_g = g;
      }
      for (int n = 0; n < p.nodes; ++n) {
        if (best_n < 0 || dn[n] > dn[best_n]) best_n = n;
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
  std::vector<double> d(static_cast<size_t>(p.experts) * nodes, 0.0);
  for (int s = 0; s < p.sources; ++s) {
    const int n = p.node_of_gpu[p.source_gpu[s]];
    for (int x = 0; x < p.experts; ++x) d[static_cast<size_t>(x) * nodes + n] += p.A(s, x);
  }
  auto D = [&](int x, int n) { return d[static_cast<size_t>(x) * nodes + n]; };
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
    bool any = false;
    for (const auto& [potential, x] : order) {
      if (budget >= 0 && st.moves() + 2 > budget) return;
      int to = -1, from = -1;
      for (int n = 0; n < nodes; ++n) {
        if (st.node_count(x, n) == 0) {
          if (to < 0 || D(x, n) > D(x, to)) to = n;
        } else if (from < 0 || D(x, n) < D(x, from)) {
          from = n;
        }
      }
      if (to < 0 || from < 0 || D(x, to) <= D(x, from)) continue;
      // x's slot on `from`, on its most loaded GPU.
      int a = -1;
      for (int slot = 0; slot < p.slots(); ++slot) {
        if (st.map()[slot] == x && p.node_of_gpu[st.Gpu(slot)] == from &&
            (a < 0 || st.gpu_load(st.Gpu(slot)) > st.gpu_load(st.Gpu(a)))) {
          a = slot;
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
      if (cands.empty()) continue;
      const size_t keep = std::min<size_t>(cands.size(), 3);
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep),
                        cands.end(), std::greater<>());
      int best_b = -1;
      double best = -kEps;
      for (size_t k = 0; k < keep; ++k) {
        const int b = cands[k].second;
        const int dm = st.SwapMoves(a, b);
        if (!WithinBudget(st.moves() + dm, budget)) continue;
        const double v = p.traffic_coef() * st.SwapTraffic(a, b) + p.move_coef() * dm;
        if (v < best) {
          best = v;
          best_b = b;
        }
      }
      if (best_b < 0) continue;
      const double dl = lx - st.SlotLoad(best_b);
      node_load[to] += dl;
      node_load[from] -= dl;
      st.ApplySwap(a, best_b);
      any = true;
    }
    if (!any) break;
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
  for (int iter = 0; iter < 4 * p.slots(); ++iter) {
    const int g = st.max_gpu();
    const double peak = st.gpu_load(g);
    if (peak <= target) return;
    cands.clear();
    for (int pass = 0; pass < 2 && cands.empty(); ++pass) {
      for (int h = 0; h < p.gpus; ++h) {
        if (h == g || (p.node_of_gpu[h] == p.node_of_gpu[g]) != (pass == 0)) continue;
        const double lh = st.gpu_load(h);
        if (lh >= peak - tol) continue;
        for (int a = g * p.slots_per_gpu; a < (g + 1) * p.slots_per_gpu; ++a) {
          const double l1 = st.SlotLoad(a);
          for (int b = h * p.slots_per_gpu; b < (h + 1) * p.slots_per_gpu; ++b) {
            const double d = l1 - st.SlotLoad(b);
            if (d <= tol || lh + d >= peak - tol || !st.SwapValid(a, b)) continue;
            if (!WithinBudget(st.moves() + st.SwapMoves(a, b), budget)) continue;
            cands.push_back({a, b, std::max(peak - d, lh + d)});
          }
        }
      }
    }
    if (cands.empty()) return;
    double low = std::numeric_limits<double>::infinity();
    for (const Cand& c : cands) low = std::min(low, c.peak);
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
    st.ApplySwap(best->a, best->b);
  }
}

// 5. Hill climbing on the exact objective, for layers small enough.
void Refine(const LayerProblem& p, const GimbalPlacementConfig& cfg, std::vector<int32_t>& map) {
  const int64_t per_eval = static_cast<int64_t>(p.sources) * p.experts + p.slots();
  int64_t evals_left = cfg.refine_work / per_eval;
  if (evals_left < 20) return;
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

}  // namespace

LayerPlan PlanLayerGimbal(const LayerProblem& p, const GimbalPlacementConfig& cfg) {
  SearchState st(p, p.current);
  AdjustCounts(p, cfg, st);
  GimbalPlacementConfig search_cfg = cfg;
  if (cfg.max_moves_per_layer > 0) {
    search_cfg.max_moves_per_layer = std::max(0, cfg.max_moves_per_layer - cfg.repair_moves);
  }
  NodeLocality(p, search_cfg, st);
  LocalSearch(p, search_cfg, st);
  std::vector<int32_t> map = st.map();
  const double before_repair = st.Objective();
  RepairBalance(p, cfg, st);
  // The repair trades traffic for balance; it stays only when the surrogate objective agrees.
  if (st.Objective() <= before_repair) map = st.map();
  Refine(p, cfg, map);

  LayerPlan plan;
  plan.current_eval = RouteAndEvaluate(p, p.current, nullptr);
  LayerRoutes routes;
  const LayerEval fresh = RouteAndEvaluate(p, map, cfg.emit_routes ? &routes : nullptr);
  const double cur = plan.current_eval.objective;
  plan.kept_current = !(fresh.objective < cur - cfg.min_gain * std::abs(cur) - kEps) ||
                      !WithinBudget(fresh.experts_moved, cfg.max_moves_per_layer);
  if (plan.kept_current) {
    plan.phy2log = p.current;
    plan.eval = cfg.emit_routes ? RouteAndEvaluate(p, p.current, &plan.routes) : plan.current_eval;
  } else {
    plan.phy2log = std::move(map);
    plan.routes = std::move(routes);
    plan.eval = fresh;
  }
  return plan;
}

Result<Placement> PlanGimbal(const SourceExpertCounts& stats, const Placement& current,
                             const PlacementTopology& topology, const GimbalPlacementConfig& config) {
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(stats, current, topology));
  Placement out;
  out.layers = current.layers;
  out.experts = current.experts;
  out.gpus = current.gpus;
  out.slots_per_gpu = current.slots_per_gpu;
  out.phy2log.reserve(current.phy2log.size());
  if (config.emit_routes) {
    out.sources = stats.sources;
    out.source_routes.reserve(static_cast<size_t>(stats.layers) * stats.sources * stats.experts);
  }
  for (int l = 0; l < stats.layers; ++l) {
    const LayerProblem p = MakeLayerProblem(stats, l, current, topology, config.weights);
    LayerPlan plan = PlanLayerGimbal(p, config);
    out.phy2log.insert(out.phy2log.end(), plan.phy2log.begin(), plan.phy2log.end());
    if (config.emit_routes) {
      for (auto& r : plan.routes) out.source_routes.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace gimbal
