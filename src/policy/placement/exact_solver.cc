#include "policy/placement/exact_solver.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#ifdef GIMBAL_HAVE_CBC
#include <Cbc_C_Interface.h>
#endif

namespace gimbal {

#ifndef GIMBAL_HAVE_CBC

bool ExactSolverAvailable() {
  return false;
}

Result<ExactLayerResult> SolveLayerExact(const LayerProblem&, const ExactOptions&) {
  return Unsupported(
      "exact placement solving needs COIN-OR CBC: install coinor-libcbc-dev and configure with "
      "-DGIMBAL_WITH_CBC=ON");
}

#else

bool ExactSolverAvailable() {
  return true;
}

namespace {

// Owns a Cbc_Model.
struct CbcModel {
  Cbc_Model* m = Cbc_newModel();
  ~CbcModel() { Cbc_deleteModel(m); }
  CbcModel() = default;
  CbcModel(const CbcModel&) = delete;
  CbcModel& operator=(const CbcModel&) = delete;
};

}  // namespace

Result<ExactLayerResult> SolveLayerExact(const LayerProblem& p, const ExactOptions& options) {
  const int E = p.experts, G = p.gpus, S = p.sources, K = p.slots_per_gpu;
  if (static_cast<int64_t>(E) * G > options.max_binaries) {
    return Status(ErrorCode::kResourceExhausted,
                  fmt::format("exact placement: {} experts x {} GPUs = {} binaries exceeds the "
                              "limit of {}; use the heuristic for instances this large",
                              E, G, E * G, options.max_binaries));
  }
  if (K > E) {
    return InvalidArgument(fmt::format(
        "exact placement: {} slots per GPU exceed {} experts (no two replicas of an expert on one "
        "GPU)",
        K, E));
  }
  CbcModel model;
  Cbc_Model* m = model.m;
  Cbc_setLogLevel(m, 0);
  const double T = p.total > 0 ? p.total : 1.0;
  // Columns: y[x][g], then t, then f for every (s, x) with tokens and every g.
  auto y = [&](int x, int g) { return x * G + g; };
  const int t_col = E * G;
  for (int x = 0; x < E; ++x) {
    for (int g = 0; g < G; ++g) {
      const bool is_new = p.current_count[static_cast<size_t>(x) * G + g] == 0;
      Cbc_addCol(m, "", 0, 1, is_new ? p.weights.migration : 0.0, 1, 0, nullptr, nullptr);
    }
  }
  Cbc_addCol(m, "", 0, 1e30, p.total > 0 ? p.weights.load * G : 0.0, 0, 0, nullptr, nullptr);
  struct Pair {
    int s, x, col;
  };
  std::vector<Pair> pairs;
  int next = t_col + 1;
  for (int s = 0; s < S; ++s) {
    for (int x = 0; x < E; ++x) {
      const double a = p.A(s, x) / T;
      if (a <= 0) continue;
      pairs.push_back({s, x, next});
      for (int g = 0; g < G; ++g) {
        Cbc_addCol(m, "", 0, a, p.total > 0 ? p.weights.traffic * p.C(s, g) : 0.0, 0, 0, nullptr,
                   nullptr);
      }
      next += G;
    }
  }
  std::vector<int> cols;
  std::vector<double> coefs;
  auto row = [&](char sense, double rhs) {
    Cbc_addRow(m, "", static_cast<int>(cols.size()), cols.data(), coefs.data(), sense, rhs);
    cols.clear();
    coefs.clear();
  };
  std::vector<std::vector<int> > gpu_flow_cols(G);
  for (const Pair& pr : pairs) {
    const double a = p.A(pr.s, pr.x) / T;
    for (int g = 0; g < G; ++g) {
      cols.push_back(pr.col + g);
      coefs.push_back(1.0);
      gpu_flow_cols[g].push_back(pr.col + g);
    }
    row('E', a);
    for (int g = 0; g < G; ++g) {
      cols = {pr.col + g, y(pr.x, g)};
      coefs = {1.0, -a};
      row('L', 0.0);
    }
  }
  for (int g = 0; g < G; ++g) {
    for (int x = 0; x < E; ++x) {
      cols.push_back(y(x, g));
      coefs.push_back(1.0);
    }
    row('E', K);
  }
  for (int x = 0; x < E; ++x) {
    for (int g = 0; g < G; ++g) {
      cols.push_back(y(x, g));
      coefs.push_back(1.0);
    }
    row('G', 1.0);
  }
  for (int g = 0; g < G; ++g) {
    for (int c : gpu_flow_cols[g]) {
      cols.push_back(c);
      coefs.push_back(1.0);
    }
    cols.push_back(t_col);
    coefs.push_back(-1.0);
    row('L', 0.0);
  }
  if (options.max_moves_per_layer >= 0) {
    for (int x = 0; x < E; ++x) {
      for (int g = 0; g < G; ++g) {
        if (p.current_count[static_cast<size_t>(x) * G + g] == 0) {
          cols.push_back(y(x, g));
          coefs.push_back(1.0);
        }
      }
    }
    row('L', options.max_moves_per_layer);
  }
  if (static_cast<int>(options.start.size()) == p.slots()) {
    std::vector<int> idx;
    std::vector<double> val;
    for (int x = 0; x < E; ++x) {
      for (int g = 0; g < G; ++g) {
        bool on = false;
        for (int k = 0; k < K; ++k) on = on || options.start[g * K + k] == x;
        idx.push_back(y(x, g));
        val.push_back(on ? 1.0 : 0.0);
      }
    }
    Cbc_setMIPStartI(m, static_cast<int>(idx.size()), idx.data(), val.data());
  }
  Cbc_setMaximumSeconds(m, options.time_limit_s);
  Cbc_setAllowableGap(m, 1e-9);
  Cbc_setAllowableFractionGap(m, 1e-9);
  Cbc_solve(m);
  const double* sol = Cbc_getColSolution(m);
  if (Cbc_isProvenInfeasible(m)) {
    return InvalidArgument(
        "exact placement: the program is infeasible (migration budget too small?)");
  }
  if (sol == nullptr || Cbc_status(m) < 0 ||
      (!Cbc_isProvenOptimal(m) && Cbc_getObjValue(m) >= 1e29)) {
    return Internal("exact placement: CBC found no solution within the time limit");
  }
  ExactLayerResult res;
  res.proven_optimal = Cbc_isProvenOptimal(m) != 0;
  res.objective = Cbc_getObjValue(m);
  // Slots: keep an expert in its current slot where it stays on the GPU.
  res.phy2log.assign(p.slots(), -1);
  for (int g = 0; g < G; ++g) {
    std::vector<int> chosen;
    for (int x = 0; x < E; ++x) {
      if (sol[y(x, g)] > 0.5) chosen.push_back(x);
    }
    if (static_cast<int>(chosen.size()) != K) {
      return Internal(
          fmt::format("exact placement: GPU {} got {} experts, expected {}", g, chosen.size(), K));
    }
    std::vector<bool> used(chosen.size(), false);
    for (int k = 0; k < K; ++k) {
      const int slot = g * K + k;
      for (size_t i = 0; i < chosen.size(); ++i) {
        if (!used[i] && chosen[i] == p.current[slot]) {
          res.phy2log[slot] = chosen[i];
          used[i] = true;
          break;
        }
      }
    }
    size_t i = 0;
    for (int k = 0; k < K; ++k) {
      const int slot = g * K + k;
      if (res.phy2log[slot] >= 0) continue;
      while (used[i]) ++i;
      res.phy2log[slot] = chosen[i];
      used[i] = true;
    }
  }
  // Routes from the flows, split evenly over an expert's slots on a GPU (one slot, as y is binary).
  auto slot_of = [&](int x, int g) {
    for (int k = 0; k < K; ++k) {
      if (res.phy2log[g * K + k] == x) return g * K + k;
    }
    return -1;
  };
  std::vector<std::vector<SlotShare> > routes(static_cast<size_t>(S) * E);
  for (const Pair& pr : pairs) {
    const double a = p.A(pr.s, pr.x) / T;
    auto& route = routes[static_cast<size_t>(pr.s) * E + pr.x];
    for (int g = 0; g < G; ++g) {
      const double f = sol[pr.col + g];
      if (f > 1e-12 * a && slot_of(pr.x, g) >= 0) {
        route.push_back({slot_of(pr.x, g), static_cast<float>(f / a)});
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int x = 0; x < E; ++x) {
      auto& route = routes[static_cast<size_t>(s) * E + x];
      if (!route.empty()) continue;
      int best = -1;
      for (int g = 0; g < G; ++g) {
        if (slot_of(x, g) >= 0 && (best < 0 || p.C(s, g) < p.C(s, best))) best = g;
      }
      route.push_back({slot_of(x, best), 1.0f});
    }
  }
  res.routes = SourceRoutes(routes);
  return res;
}

#endif  // GIMBAL_HAVE_CBC

Result<Placement> PlanExact(const SourceExpertCounts& stats, const Placement& current,
                            const PlacementTopology& topology, const ObjectiveWeights& weights,
                            const ExactOptions& options) {
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(stats, current, topology));
  Placement out;
  out.layers = current.layers;
  out.experts = current.experts;
  out.gpus = current.gpus;
  out.slots_per_gpu = current.slots_per_gpu;
  out.sources = stats.sources;
  for (int l = 0; l < stats.layers; ++l) {
    const LayerProblem p = MakeLayerProblem(stats, l, current, topology, weights);
    Result<ExactLayerResult> r = SolveLayerExact(p, options);
    if (!r.ok()) return r.status().WithContext(fmt::format("layer {}", l));
    out.phy2log.insert(out.phy2log.end(), r->phy2log.begin(), r->phy2log.end());
    out.source_routes.Append(r->routes);
  }
  return out;
}

}  // namespace gimbal
