// RouteAndEvaluate (declared in placement_problem.h): routes each source's tokens for an expert
// over that expert's replicas, one layer at a time, for a fixed placement.
//
// Layout for speed (the routing is most of the planner's time at DeepSeek-V3 scale):
//  - single-replica experts are scored in O(1) each from LayerProblem's per-GPU and per-node
//    demand (all their tokens go to the one replica);
//  - every (source, multi-replica expert) demand gets its replicas in one flat array, sorted by
//    cost, with the GPU and the distance class (same GPU, same node, other node) of each; the
//    demands of the sources of one node whose own GPU holds no replica share one such list;
//  - the passes accumulate tokens per distance class (in registers) and turn them into crossings
//    and traffic once at the end; the uncapped pass and two-replica demands take short paths,
//    and the balanced pass skips demands whose replicas all cost the same (nothing moves);
//  - routes come from the flows the winning pass recorded as it ran (no rerun), built in a
//    scratch buffer with room for each route, then appended to the caller's flat SourceRoutes
//    (RouteAndEvaluateInto) in one piece: no allocation per route;
//  - a candidate pass stops once a lower bound on its objective shows it cannot win (the class
//    sums so far plus the demands still to come at their nearest replicas, and a floor on the
//    peak), and, for the hysteresis, a whole evaluation can give up above a threshold
//    (RouteAndEvaluateWith).
// Every shortcut makes the same floating-point operations in the same order as the general steps,
// and the early exits only skip passes that could not win: the results are bit for bit those of
// the plain algorithm.
#include "policy/placement/replica_routing.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>

namespace gimbal {
namespace {

// Replicas of each expert grouped by GPU, in CSR form, with the first slot and the number of
// slots the expert has on that GPU.
struct ReplicaIndex {
  std::vector<int> start;   // experts + 1
  std::vector<int> gpu;     // distinct GPUs holding the expert
  std::vector<int> slot;    // first slot of the expert on that GPU
  std::vector<int> nslots;  // slots of the expert on that GPU
  std::vector<int> total;   // per expert: slots

  ReplicaIndex(const LayerProblem& p, std::span<const int32_t> phy2log) {
    start.assign(p.experts + 1, 0);
    total.assign(p.experts, 0);
    std::vector<int> last_gpu(p.experts, -1);
    for (int s = 0; s < p.slots(); ++s) {
      const int x = phy2log[s], g = s / p.slots_per_gpu;
      total[x]++;
      if (last_gpu[x] != g) {
        last_gpu[x] = g;
        start[x + 1]++;
      }
    }
    for (int x = 0; x < p.experts; ++x) start[x + 1] += start[x];
    const size_t n = static_cast<size_t>(start[p.experts]);
    gpu.resize(n);
    slot.resize(n);
    nslots.assign(n, 0);
    std::vector<int> fill(start.begin(), start.end() - 1);
    std::fill(last_gpu.begin(), last_gpu.end(), -1);
    for (int s = 0; s < p.slots(); ++s) {
      const int x = phy2log[s], g = s / p.slots_per_gpu;
      if (last_gpu[x] != g) {
        last_gpu[x] = g;
        gpu[fill[x]] = g;
        slot[fill[x]] = s;
        fill[x]++;
      }
      nslots[fill[x] - 1]++;
    }
  }
  int count(int x) const { return start[x + 1] - start[x]; }
};

// Adds `weight` of the tokens to replica entry r's slots (split evenly over them) in the route
// route[0, len), which has room for every slot of the expert.
void AddShare(const LayerProblem& p, std::span<const int32_t> phy2log, const ReplicaIndex& ri,
              int r, double weight, SlotShare* route, int32_t& len) {
  const int x = phy2log[ri.slot[r]];
  const int n = ri.nslots[r];
  const float w = static_cast<float>(weight / n);
  SlotShare* const end = route + len;
  if (n == 1) {  // the loop below, for one slot (the first of x on the GPU)
    const int s = ri.slot[r];
    for (SlotShare* sh = route; sh != end; ++sh) {
      if (sh->slot == s) {
        sh->weight += w;
        return;
      }
    }
    route[len++] = {s, w};
    return;
  }
  const int last = (ri.slot[r] / p.slots_per_gpu + 1) * p.slots_per_gpu;
  for (int s = ri.slot[r], left = n; s < last && left > 0; ++s) {
    if (phy2log[s] != x) continue;
    --left;
    SlotShare* it =
        std::find_if(route, route + len, [&](const SlotShare& sh) { return sh.slot == s; });
    if (it != route + len) {
      it->weight += w;
    } else {
      route[len++] = {s, w};
    }
  }
}

// Tokens routed at distance class 1 (same node) and 2 (across nodes); class 0 is not needed. Both
// sums take every amount, the other class's as +0.0 (amounts are positive, and adding +0.0 leaves
// a sum unchanged): the same sums as indexing an array by class, kept in registers.
struct ClassSums {
  double a1 = 0, a2 = 0;
  void Add(int cls, double v) {
    a1 += cls == 1 ? v : 0.0;
    a2 += cls == 2 ? v : 0.0;
  }
};

}  // namespace

LayerEval RouteAndEvaluate(const LayerProblem& p, std::span<const int32_t> phy2log,
                           LayerRoutes* routes) {
  if (routes != nullptr) routes->clear();
  return RouteAndEvaluateInto(p, phy2log, routes);
}

LayerEval RouteAndEvaluateInto(const LayerProblem& p, std::span<const int32_t> phy2log,
                               SourceRoutes* routes) {
  return placement_internal::RouteAndEvaluateWith(p, phy2log, routes, true, nullptr,
                                                  std::numeric_limits<double>::infinity(), nullptr);
}

namespace placement_internal {

LayerEval RouteAndEvaluateWith(const LayerProblem& p, std::span<const int32_t> phy2log,
                               SourceRoutes* routes, bool early_exit, int* stopped_passes,
                               double give_up, bool* exact) {
  const ReplicaIndex ri(p, phy2log);
  LayerEval base;
  base.total_tokens = p.total;
  base.mean_load = p.total / p.gpus;
  for (int x = 0; x < p.experts; ++x) {
    for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
      base.experts_moved +=
          std::max(0, ri.nslots[r] - p.current_count[static_cast<size_t>(x) * p.gpus + ri.gpu[r]]);
    }
  }
  // Distance classes: 0 same GPU, 1 same node, 2 across nodes; their costs and their rank among
  // the distinct costs (equal costs share a rank, so sorting by rank is sorting by cost).
  const std::array<double, 3> cls_cost = {0.0, p.alpha, p.beta};
  const std::array<int, 3> cls_rank = {0, p.alpha > 0 ? 1 : 0,
                                       (p.alpha > 0 ? 1 : 0) + (p.beta > p.alpha ? 1 : 0)};
  // Distance class of GPU g from source s.
  auto cls_of = [&](int s, int g) {
    const int sg = p.source_gpu[s];
    return sg == g ? 0 : p.node_of_gpu[sg] == p.node_of_gpu[g] ? 1 : 2;
  };
  std::vector<double> forced(p.gpus, 0.0);
  std::array<double, 3> base_acc = {0, 0, 0};  // tokens per distance class
  std::vector<int> multi;
  for (int x = 0; x < p.experts; ++x) {
    if (ri.count(x) == 1) {
      const int g = ri.gpu[ri.start[x]];
      forced[g] += p.totals[x];
      const double dg = p.GpuDemand(x, g), dn = p.NodeDemand(x, p.node_of_gpu[g]);
      base_acc[1] += dn - dg;
      base_acc[2] += p.totals[x] - dn;
    } else if (p.totals[x] > 0) {
      multi.push_back(x);
    }
  }
  std::stable_sort(multi.begin(), multi.end(),
                   [&](int a, int b) { return p.totals[a] > p.totals[b]; });
  // With give_up (see below), first a lower bound on every pass's objective, before building the
  // demands: the peak is at least the larger of the mean and the largest forced load (in exact
  // arithmetic), and every token of a multi-replica expert goes at best to its nearest replica's
  // class. When even that reaches give_up, with a relative margin far above the rounding of sums
  // taken in another order than the passes', every pass would be dropped.
  const bool weights_ok = p.load_coef() >= 0 && p.traffic_coef() >= 0 &&
                          p.move_coef() * base.experts_moved >= 0 && cls_cost[1] >= 0 &&
                          cls_cost[2] >= 0;
  if (early_exit && weights_ok && routes == nullptr &&
      give_up < std::numeric_limits<double>::infinity()) {
    std::vector<int> on_gpu(p.gpus, -1), on_node(p.nodes, -1);
    std::array<double, 3> near = base_acc;  // tokens per nearest class (class 0 not needed)
    double placed = 0, forced_max = 0;
    for (double f : forced) {
      placed += f;
      forced_max = std::max(forced_max, f);
    }
    for (size_t i = 0; i < multi.size(); ++i) {
      const int x = multi[i], mark = static_cast<int>(i);
      for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
        on_gpu[ri.gpu[r]] = mark;
        on_node[p.node_of_gpu[ri.gpu[r]]] = mark;
      }
      // The expert's sums in registers, without a branch per source (counts here are >= 0, and
      // the margin below covers summing in this order).
      const double* ax = p.ExpertCounts(x);
      double n1 = 0, n2 = 0, all = 0;
      for (int s = 0; s < p.sources; ++s) {
        const double v = ax[s] > 0 ? ax[s] : 0.0;
        const int sg = p.source_gpu[s];
        const int c = on_gpu[sg] == mark ? 0 : on_node[p.node_of_gpu[sg]] == mark ? 1 : 2;
        n1 += c == 1 ? v : 0.0;
        n2 += c == 2 ? v : 0.0;
        all += v;
      }
      near[1] += n1;
      near[2] += n2;
      placed += all;
    }
    const double peak_low = std::max(forced_max, placed / p.gpus);
    const double lower = p.load_coef() * peak_low +
                         p.traffic_coef() * (cls_cost[1] * near[1] + cls_cost[2] * near[2]) +
                         p.move_coef() * base.experts_moved;
    if (lower * (1 - 1e-9) >= give_up) {
      if (exact != nullptr) *exact = false;
      LayerEval e = base;
      e.objective = e.max_load = std::numeric_limits<double>::infinity();
      return e;
    }
  }
  // Demands: per multi-replica expert (in `multi` order), its sources with tokens, nearest
  // replica first (stable by source); per demand, its replicas by cost (stable), in `ent`. A
  // source on a GPU without a replica of the expert sees each replica at a class that depends only
  // on its node (same node, or across nodes), so the demands of such sources on one node share
  // one list; a source on a GPU holding a replica has a list of its own.
  struct Demand {
    int s, x, first, n;
    double a;
    bool ties;     // two replicas at the same cost (the pass orders them by load)
    bool uniform;  // all its replicas at the same cost (the balanced pass moves nothing)
  };
  struct Entry {
    int r;     // replica entry of ReplicaIndex
    int g;     // its GPU
    int cls;   // distance class from the demand's source
    int rank;  // rank of its cost
  };
  struct List {
    int first;
    bool ties, uniform;
  };
  std::vector<Demand> dem;
  std::vector<Entry> ent;
  dem.reserve(multi.size() * p.sources);
  int amounts = 0;
  std::array<std::vector<int>, 3> bucket;
  // = i when multi[i] has a replica on the GPU / node, or (node_list_mark) a list for the node.
  std::vector<int> gpu_mark(p.gpus, -1), node_mark(p.nodes, -1), node_list_mark(p.nodes, -1);
  std::vector<List> node_list(p.nodes);
  // multi[i]'s demands are dem[dem_start[i]] .. dem[dem_start[i + 1] - 1].
  std::vector<int> dem_start(multi.size() + 1, 0);
  for (size_t i = 0; i < multi.size(); ++i) {
    const int x = multi[i];
    const int n = ri.count(x);
    const int mark = static_cast<int>(i);
    for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
      gpu_mark[ri.gpu[r]] = mark;
      node_mark[p.node_of_gpu[ri.gpu[r]]] = mark;
    }
    // The replicas of x from source GPU sg on node sn, sorted stably by cost.
    auto make_list = [&](int sg, int sn) {
      const int first = static_cast<int>(ent.size());
      for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
        const int g = ri.gpu[r];
        const int c = g == sg ? 0 : p.node_of_gpu[g] == sn ? 1 : 2;
        ent.push_back({r, g, c, cls_rank[c]});
      }
      // Stable insertion sort by cost (few replicas).
      Entry* e = ent.data() + first;
      for (int a = 1; a < n; ++a) {
        for (int b2 = a; b2 > 0 && e[b2].rank < e[b2 - 1].rank; --b2) std::swap(e[b2], e[b2 - 1]);
      }
      bool ties = false;
      for (int a = 1; a < n; ++a) ties |= e[a].rank == e[a - 1].rank;
      return List{first, ties, e[0].rank == e[n - 1].rank};
    };
    const double* ax = p.ExpertCounts(x);
    for (auto& b : bucket) b.clear();
    for (int s = 0; s < p.sources; ++s) {
      if (ax[s] <= 0) continue;
      const int sg = p.source_gpu[s];
      const int best = gpu_mark[sg] == mark                   ? cls_rank[0]
                       : node_mark[p.node_of_gpu[sg]] == mark ? cls_rank[1]
                                                              : cls_rank[2];
      bucket[best].push_back(s);
    }
    for (const auto& b : bucket) {
      for (int s : b) {
        const int sg = p.source_gpu[s], sn = p.node_of_gpu[sg];
        List l;
        if (gpu_mark[sg] == mark) {
          l = make_list(sg, sn);
        } else {
          if (node_list_mark[sn] != mark) {
            node_list_mark[sn] = mark;
            node_list[sn] = make_list(-1, sn);
          }
          l = node_list[sn];
        }
        dem.push_back({s, x, l.first, n, ax[s], l.ties, l.uniform});
        amounts += n;
      }
    }
    dem_start[i + 1] = static_cast<int>(dem.size());
  }
  double lb = base.mean_load;
  for (double f : forced) lb = std::max(lb, f);

  auto finish = [&](const ClassSums& acc, const std::vector<double>& load) {
    LayerEval e = base;
    const double a1 = base_acc[1] + acc.a1, a2 = base_acc[2] + acc.a2;
    e.cross_gpu_tokens = a1 + a2;
    e.cross_node_tokens = a2;
    e.traffic_cost = cls_cost[1] * a1 + cls_cost[2] * a2;
    e.max_load = *std::max_element(load.begin(), load.end());
    e.objective = p.load_coef() * e.max_load + p.traffic_coef() * e.traffic_cost +
                  p.move_coef() * e.experts_moved;
    return e;
  };

  // Early exit: a pass stops, returning stopped(), once a lower bound on its objective reaches
  // `stop` (the objective it must stay below to win; kNoStop: never), checked before each expert
  // (multi[i]). Two bounds, either suffices:
  //  - finish's arithmetic on the class sums so far and a lower bound on the final peak. Rounding
  //    to nearest is monotone (x <= y gives fl(x + c) <= fl(y + c), and fl(x * c) <= fl(y * c)
  //    for c >= 0), the class sums only grow, and every coefficient is >= 0, so the bound is at
  //    most the objective finish would compute, bit for bit;
  //  - the same plus rest[i], the traffic of the demands still to come at their nearest replicas'
  //    cost (each of their tokens goes at least that far; with alpha <= beta a token moved from
  //    class 1 to class 2 costs more, so the class sums' cost only grows), times (1 - 1e-9). All
  //    terms are >= 0 and each is a sum of at most a few ten thousand amounts, so its rounding
  //    differs from the exact sum's by a relative 1e-11 at most: far inside the margin.
  // So a stopped pass could not have won, and the winner and its figures are those of the full
  // evaluation.
  constexpr double kNoStop = std::numeric_limits<double>::infinity();
  const bool can_stop = early_exit && weights_ok;
  const bool use_rest = can_stop && cls_cost[1] <= cls_cost[2];
  std::vector<double> rest(multi.size() + 1, 0.0);  // rest[i]: see above
  if (use_rest) {
    for (size_t i = multi.size(); i-- > 0;) {
      double t = 0;
      for (int k = dem_start[i]; k < dem_start[i + 1]; ++k) {
        t += cls_cost[ent[dem[k].first].cls] * dem[k].a;  // the first entry is the nearest
      }
      rest[i] = rest[i + 1] + t;
    }
  }
  auto bound = [&](const ClassSums& acc, double peak, size_t i) {
    const double a1 = base_acc[1] + acc.a1, a2 = base_acc[2] + acc.a2;
    const double now = p.load_coef() * peak +
                       p.traffic_coef() * (cls_cost[1] * a1 + cls_cost[2] * a2) +
                       p.move_coef() * base.experts_moved;
    if (!use_rest) return now;
    const double ahead =
        (p.load_coef() * peak + p.traffic_coef() * (cls_cost[1] * a1 + cls_cost[2] * a2 + rest[i]) +
         p.move_coef() * base.experts_moved) *
        (1 - 1e-9);
    return std::max(now, ahead);
  };
  // A pass stopped or dropped: no objective, no peak (so the uncapped pass's peak skips nothing).
  auto none = [&] {
    LayerEval e = base;
    e.objective = kNoStop;
    e.max_load = kNoStop;
    return e;
  };
  auto stopped = [&] {
    if (stopped_passes != nullptr) ++*stopped_passes;
    return none();
  };
  // Without routes, passes whose objective reaches give_up are stopped or dropped as well.
  const double give = can_stop && routes == nullptr ? give_up : kNoStop;
  // The full evaluation keeps its best pass so far unless a later one is lower by more than
  // 1e-12. Dropping passes at or above give_up changes nothing once a pass below
  // give_up - 1e-12 has been kept (no dropped pass could replace it), so the result is exact
  // when no pass was dropped before the first one kept, or that one is below give_up - 1e-12.
  bool dropped = false, any_kept = false, result_exact = true;
  auto keep = [&](const LayerEval& e) {
    if (e.objective >= give) {
      dropped = true;
      return none();
    }
    if (!any_kept) {
      any_kept = true;
      result_exact = !dropped || e.objective < give - 1e-12;
    }
    return e;
  };
  // Floors on the final peak. forced_max is exact for the nearest pass (its loads start at
  // `forced` and only grow). In exact arithmetic every pass ends with its loads summing to T, and
  // no GPU below its forced load, so the peak is at least the larger of the mean and the largest
  // forced load; the computed loads can differ from the exact ones by rounding, hence the
  // relative margin (far above the rounding of the few additions per demand a load takes).
  const double forced_max = *std::max_element(forced.begin(), forced.end());
  double routed = 0;  // the tokens the passes place: forced ones and the demands
  for (double f : forced) routed += f;
  for (const Demand& d : dem) routed += d.a;
  const double peak_floor = std::max(forced_max, routed / p.gpus) * (1 - 1e-6);

  // One nearest-replica pass at a cap. With a log, records (demand, entry, amount) from log->begin
  // on and, when the pass ends (not stopped), sets log->end past the last.
  struct Flow {
    int d, r;
    double amount;
  };
  struct FlowLog {
    Flow* begin = nullptr;
    Flow* end = nullptr;
  };
  std::vector<double> load(p.gpus);
  std::vector<Entry> tied;
  auto pass = [&](double cap, FlowLog* log, double stop) {
    Flow* flows = log ? log->begin : nullptr;
    ClassSums acc;
    load = forced;
    // Loads only grow in this pass, so the peak so far is a lower bound on the final peak.
    double peak = std::max(forced_max, peak_floor);
    size_t di = 0;
    for (size_t i = 0; i < multi.size(); ++i) {
      if (stop < kNoStop) {
        if (i > 0) {
          const int x = multi[i - 1];
          for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
            peak = std::max(peak, load[ri.gpu[r]]);
          }
        }
        if (bound(acc, peak, i) >= stop) return stopped();
      }
      const size_t dend = static_cast<size_t>(dem_start[i + 1]);
      for (; di < dend; ++di) {
        const Demand& d = dem[di];
        const int n = d.n;
        std::span<const Entry> reps(ent.data() + d.first, n);
        if (cap == std::numeric_limits<double>::infinity()) {
          // No cap: everything to the first replica of the order below, which is the first of the
          // least loaded among the nearest.
          const Entry* to = &reps[0];
          if (d.ties) {
            for (int j = 1; j < n && reps[j].rank == reps[0].rank; ++j) {
              if (load[reps[j].g] < load[to->g]) to = &reps[j];
            }
          }
          load[to->g] += d.a;
          acc.Add(to->cls, d.a);
          if (flows) *flows++ = {static_cast<int>(di), to->r, d.a};
          continue;
        }
        if (n == 2) {
          // The general steps below, for two replicas (the common case).
          const Entry* first = &reps[0];
          const Entry* second = &reps[1];
          if (d.ties && load[second->g] < load[first->g]) std::swap(first, second);
          double left = d.a;
          for (const Entry* en : {first, second}) {
            if (left <= 0) break;
            const double take = std::min(left, std::max(0.0, cap - load[en->g]));
            if (take <= 0) continue;
            load[en->g] += take;
            left -= take;
            acc.Add(en->cls, take);
            if (flows) *flows++ = {static_cast<int>(di), en->r, take};
          }
          if (left > 0) {
            const Entry* to = load[second->g] < load[first->g] ? second : first;
            load[to->g] += left;
            acc.Add(to->cls, left);
            if (flows) *flows++ = {static_cast<int>(di), to->r, left};
          }
          continue;
        }
        if (d.ties) {
          tied.assign(reps.begin(), reps.end());
          // Within a group of equal cost, the less loaded replica first.
          for (int a = 1; a < n; ++a) {
            for (int b = a;
                 b > 0 && tied[b].rank == tied[b - 1].rank && load[tied[b].g] < load[tied[b - 1].g];
                 --b) {
              std::swap(tied[b], tied[b - 1]);
            }
          }
          reps = tied;
        }
        double left = d.a;
        for (const Entry& en : reps) {
          if (left <= 0) break;
          const double take = std::min(left, std::max(0.0, cap - load[en.g]));
          if (take <= 0) continue;
          load[en.g] += take;
          left -= take;
          acc.Add(en.cls, take);
          if (flows) *flows++ = {static_cast<int>(di), en.r, take};
        }
        if (left > 0) {
          const Entry* best = &reps[0];
          for (const Entry& en : reps) {
            if (load[en.g] < load[best->g]) best = &en;
          }
          load[best->g] += left;
          acc.Add(best->cls, left);
          if (flows) *flows++ = {static_cast<int>(di), best->r, left};
        }
      }
    }
    if (log) log->end = flows;
    return finish(acc, load);
  };

  // The balanced pass: start from vLLM's even split over the expert's slots, then move each
  // source's tokens from farther to nearer replicas while the nearer GPU stays under `cap`. GPUs
  // above `cap` only lose load, so the maximum is at most max(cap, the even split's maximum), and
  // the traffic at most the even split's.
  std::vector<double> share(ri.gpu.size(), 0.0);  // per replica entry: its share of the slots
  for (int x = 0; x < p.experts; ++x) {
    for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
      share[r] = static_cast<double>(ri.nslots[r]) / ri.total[x];
    }
  }
  // Each GPU's even-split load adds its demands' shares in demand order. An expert's demands are
  // contiguous and it has one replica entry per GPU, so the sum runs replica by replica over the
  // expert's demands (in a register), the same additions in the same order. Alongside: each
  // replica entry's part of that load (its expert's demands' shares), and each GPU's total of
  // those parts, which is all the balanced pass can take off the GPU (its early exit's floor).
  std::vector<double> even_load = forced;
  std::vector<double> even_part(ri.gpu.size(), 0.0), movable_all(p.gpus, 0.0), movable(p.gpus);
  for (size_t i = 0; i < multi.size(); ++i) {
    const int x = multi[i];
    for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
      double t = even_load[ri.gpu[r]], part = 0;
      for (int k = dem_start[i]; k < dem_start[i + 1]; ++k) {
        const double v = dem[k].a * share[r];
        t += v;
        part += v;
      }
      even_load[ri.gpu[r]] = t;
      even_part[r] = part;
      movable_all[ri.gpu[r]] += part;
    }
  }
  // One demand's amounts per replica, starting from its even shares (d.a x the replica's share).
  int max_n = 0;
  for (const Demand& d : dem) max_n = std::max(max_n, d.n);
  std::vector<double> amount(max_n);
  auto balanced_pass = [&](double cap, FlowLog* log, double stop) {
    Flow* flows = log ? log->begin : nullptr;
    ClassSums acc;
    load = even_load;
    if (stop < kNoStop) movable = movable_all;
    size_t di = 0;
    for (size_t i = 0; i < multi.size(); ++i) {
      // Loads fall as well as rise here, but a GPU loses at most the even parts of its replicas
      // of the experts still to come (a demand moves at most a replica's even share off it), so
      // its final load is at least load - movable; the margin (1e-9 of the tokens) is far above
      // the rounding of the few thousand additions and subtractions behind either figure.
      if (stop < kNoStop) {
        double peak = peak_floor;
        if (i > 0) {
          const int x = multi[i - 1];
          for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) movable[ri.gpu[r]] -= even_part[r];
          double floor = 0;
          for (int g = 0; g < p.gpus; ++g) floor = std::max(floor, load[g] - movable[g]);
          peak = std::max(peak, floor - 1e-9 * routed);
        }
        if (bound(acc, peak, i) >= stop) return stopped();
      }
      const size_t dend = static_cast<size_t>(dem_start[i + 1]);
      for (; di < dend; ++di) {
        const Demand& d = dem[di];
        const int n = d.n;
        const Entry* e = &ent[d.first];
        if (d.uniform) {  // nothing moves: the even split
          for (int j = 0; j < n; ++j) {
            const double v = d.a * share[e[j].r];
            if (v <= 0) continue;
            acc.Add(e[j].cls, v);
            if (flows) *flows++ = {static_cast<int>(di), e[j].r, v};
          }
          continue;
        }
        double* amt = amount.data();
        for (int j = 0; j < n; ++j) amt[j] = d.a * share[e[j].r];
        for (int near = 0; near < n; ++near) {
          const int gn = e[near].g;
          for (int far = n - 1; far > near; --far) {
            if (!(e[far].rank > e[near].rank)) break;
            const double take = std::min(amt[far], cap - load[gn]);
            if (take <= 0) continue;
            amt[far] -= take;
            amt[near] += take;
            load[e[far].g] -= take;
            load[gn] += take;
          }
        }
        for (int j = 0; j < n; ++j) {
          if (amt[j] <= 0) continue;
          acc.Add(e[j].cls, amt[j]);
          if (flows) *flows++ = {static_cast<int>(di), e[j].r, amt[j]};
        }
      }
    }
    if (log) log->end = flows;
    return finish(acc, load);
  };

  static constexpr double kSlack[] = {0.0, 0.03, 0.1, -1};
  LayerEval best;
  best.objective = std::numeric_limits<double>::infinity();
  // With routes, every candidate pass records its flows (in `trial`, the uncapped one in
  // `uncapped_log`) and the winner's are kept (`best_log`): the flows a rerun of the winning pass
  // would record, as a pass that wins ran to its end. Cheaper than the rerun (stores, where a pass
  // is chains of dependent additions).
  std::unique_ptr<Flow[]> flow_buf;
  FlowLog best_log, uncapped_log, trial;
  FlowLog* rec = nullptr;
  if (routes) {
    // A pass makes at most one flow per replica of a demand, plus one spill.
    const size_t most = static_cast<size_t>(amounts) + dem.size();
    flow_buf = std::make_unique_for_overwrite<Flow[]>(3 * most);
    best_log.begin = best_log.end = flow_buf.get();
    uncapped_log.begin = flow_buf.get() + most;
    trial.begin = flow_buf.get() + 2 * most;
    rec = &trial;
  }
  if (multi.empty()) {
    best = keep(pass(std::numeric_limits<double>::infinity(), rec, give));
    if (routes) std::swap(best_log, trial);
  } else {
    const double even_max = *std::max_element(even_load.begin(), even_load.end());
    // The uncapped nearest pass first: a capped one whose cap that pass never reaches makes the
    // same choices, so it is not run again.
    const LayerEval uncapped =
        keep(pass(std::numeric_limits<double>::infinity(), routes ? &uncapped_log : nullptr, give));
    double last_balanced = -1;
    for (double d : kSlack) {
      const double cap = d < 0 ? std::numeric_limits<double>::infinity() : lb * (1 + d);
      for (bool balanced : {false, true}) {
        const double c = balanced ? std::max(cap, even_max) : cap;
        // The balanced pass without a cap is the nearest-replica pass; equal caps repeat.
        if (balanced && (d < 0 || c == last_balanced)) continue;
        if (balanced) last_balanced = c;
        if (!balanced && d >= 0 && uncapped.max_load <= c) continue;
        const double stop = std::min(can_stop ? best.objective - 1e-12 : kNoStop, give);
        LayerEval e = keep(balanced ? balanced_pass(c, rec, stop)
                           : d < 0  ? uncapped
                                    : pass(c, rec, stop));
        if (e.objective < best.objective - 1e-12) {
          best = e;
          if (routes) std::swap(best_log, !balanced && d < 0 ? uncapped_log : trial);
        }
      }
    }
  }
  if (exact != nullptr) *exact = result_exact && any_kept;
  if (best.objective == kNoStop) {  // every pass reached give_up, or scored +infinity
    // The layer's routes are still appended (empty: the even split), so the table keeps its shape.
    if (routes) routes->AppendEmpty(static_cast<size_t>(p.sources) * p.experts);
    return none();
  }
  if (routes) {
    // Each source's route for a multi-replica expert has room for all the expert's slots in
    // `buf` (at s * room + at[x]); written out of order, then appended in order. Single-replica
    // experts keep an empty route (the even split over their slots).
    std::vector<int32_t> at(p.experts);
    std::vector<int> multi_all;  // the multi-replica experts, ascending
    size_t room = 0;
    for (int x = 0; x < p.experts; ++x) {
      at[x] = static_cast<int32_t>(room);
      if (ri.count(x) < 2) continue;
      multi_all.push_back(x);
      room += static_cast<size_t>(ri.total[x]);
    }
    // Scratch kept between calls (a plan routes every layer): only its growth is initialised.
    thread_local std::vector<SlotShare> buf;
    if (buf.size() < room * p.sources) buf.resize(room * p.sources);
    std::vector<int32_t> len(static_cast<size_t>(p.sources) * p.experts, 0);
    auto add = [&](int s, int x, int r, double weight) {
      AddShare(p, phy2log, ri, r, weight, buf.data() + s * room + at[x],
               len[static_cast<size_t>(s) * p.experts + x]);
    };
    // Multi-replica experts a source sends no tokens to: the nearest replica.
    for (int x = 0; x < p.experts; ++x) {
      if (ri.count(x) < 2) continue;
      for (int s = 0; s < p.sources; ++s) {
        if (p.ExpertCounts(x)[s] > 0) continue;
        int bestr = ri.start[x];
        for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
          if (cls_cost[cls_of(s, ri.gpu[r])] < cls_cost[cls_of(s, ri.gpu[bestr])]) bestr = r;
        }
        add(s, x, bestr, 1.0);
      }
    }
    for (const Flow* f = best_log.begin; f != best_log.end; ++f) {
      const Demand& d = dem[f->d];
      add(d.s, d.x, f->r, f->amount / d.a);
    }
    SlotShare* out = routes->AppendRoutes(len).data();
    for (int s = 0; s < p.sources; ++s) {
      const int32_t* n = len.data() + static_cast<size_t>(s) * p.experts;
      for (const int x : multi_all) {
        out = std::copy_n(buf.data() + s * room + at[x], n[x], out);
      }
    }
  }
  return best;
}

}  // namespace placement_internal
}  // namespace gimbal
