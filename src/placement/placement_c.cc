// The C API of include/gimbal/placement_c.h over PlacementPolicy.
#include "gimbal/placement_c.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "policy/placement/placement_policy.h"

struct gimbal_planner {
  std::unique_ptr<gimbal::PlacementPolicy> policy;
  // Set by the const calls too (route, quality): every -1 has its message, as the header says.
  mutable std::string error;
  bool planned = false;
  int sources = 0;  // of the last plan: routes are answered for these
  gimbal::Placement plan;
  gimbal::PlacementQuality quality;
};

namespace {

void CopyError(const std::string& msg, char* err, size_t err_len) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = std::min(msg.size(), err_len - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

int Fail(gimbal_planner* p, const std::string& msg) {
  p->error = msg;
  p->planned = false;
  return -1;
}

}  // namespace

extern "C" {

gimbal_planner* gimbal_planner_create(const char* policy, const char* params, char* err,
                                      size_t err_len) {
  if (policy == nullptr) {
    CopyError("gimbal_planner_create: policy is NULL", err, err_len);
    return nullptr;
  }
  gimbal::Params p;
  if (params != nullptr) {
    std::string all(params);
    size_t start = 0;
    while (start <= all.size()) {
      size_t end = all.find(';', start);
      if (end == std::string::npos) end = all.size();
      const std::string kv = all.substr(start, end - start);
      if (!kv.empty()) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
          CopyError(fmt::format("gimbal_planner_create: parameter '{}' is not key=value", kv), err,
                    err_len);
          return nullptr;
        }
        p.Set(kv.substr(0, eq), kv.substr(eq + 1));
      }
      start = end + 1;
    }
  }
  gimbal::Result<std::unique_ptr<gimbal::PlacementPolicy>> made =
      gimbal::MakePlacementPolicy(policy, p);
  if (!made.ok()) {
    CopyError(made.status().ToString(), err, err_len);
    return nullptr;
  }
  auto* planner = new gimbal_planner;
  planner->policy = std::move(made).value();
  return planner;
}

void gimbal_planner_destroy(gimbal_planner* planner) {
  delete planner;
}

}  // extern "C"

namespace {

int Plan(gimbal_planner* planner, const gimbal_topology* topology, int layers, int sources,
         int experts, int slots_per_gpu, const double* counts, const int32_t* current_phy2log,
         int32_t* out_phy2log) {
  if (topology == nullptr || counts == nullptr || out_phy2log == nullptr) {
    return Fail(planner, "gimbal_planner_plan: topology, counts and out_phy2log must not be NULL");
  }
  if (layers <= 0 || sources <= 0 || experts <= 0 || slots_per_gpu <= 0 || topology->gpus <= 0) {
    return Fail(planner,
                fmt::format("gimbal_planner_plan: layers ({}), sources ({}), experts ({}), "
                            "slots_per_gpu ({}) and gpus ({}) must be positive",
                            layers, sources, experts, slots_per_gpu, topology->gpus));
  }
  // 0 (a zero-initialised struct) means the default; a negative or non-finite value is an error,
  // not replaced by one.
  if (topology->expert_groups < 0) {
    return Fail(planner, fmt::format("gimbal_planner_plan: expert_groups ({}) must be >= 0",
                                     topology->expert_groups));
  }
  if (!(topology->expert_bytes >= 0) || !std::isfinite(topology->expert_bytes)) {
    return Fail(planner,
                fmt::format("gimbal_planner_plan: expert_bytes ({}) must be finite and >= 0",
                            topology->expert_bytes));
  }
  // The arrays are copied before the planner checks its inputs: their sizes are bounded first,
  // as the file formats bound them (a call with 2^30 layers and sources threw out of this C
  // function and ended its host).
  // In double: three ints' product can pass int64 (2^30 x 2^30 x 8).
  const double cells = static_cast<double>(layers) * sources * experts;
  const int64_t slots = int64_t{topology->gpus} * slots_per_gpu;  // two ints: fits
  if (cells > static_cast<double>(gimbal::kMaxRoutingCells) || slots > gimbal::kMaxSlots ||
      int64_t{layers} * slots > gimbal::kMaxPlacementCells) {
    return Fail(planner,
                fmt::format("gimbal_planner_plan: layers x sources x experts ({:.0f}) must be "
                            "at most {}, gpus x slots_per_gpu ({}) at most {} and layers "
                            "x gpus x slots_per_gpu at most {}",
                            cells, gimbal::kMaxRoutingCells, slots, gimbal::kMaxSlots,
                            gimbal::kMaxPlacementCells));
  }
  gimbal::PlacementTopology topo;
  topo.gpus = topology->gpus;
  topo.gpus_per_node = topology->gpus_per_node;
  topo.alpha = topology->alpha;
  topo.beta = topology->beta;
  topo.expert_groups = topology->expert_groups > 0 ? topology->expert_groups : 1;
  topo.expert_bytes = topology->expert_bytes > 0 ? topology->expert_bytes : 1.0;
  topo.slots_per_gpu = slots_per_gpu;
  gimbal::SourceExpertCounts stats = gimbal::SourceExpertCounts::Zeros(layers, sources, experts);
  std::memcpy(stats.counts.data(), counts, stats.counts.size() * sizeof(double));
  gimbal::Placement current;
  const size_t n_slots = static_cast<size_t>(layers) * topo.gpus * slots_per_gpu;
  if (current_phy2log == nullptr) {
    gimbal::Result<gimbal::Placement> def = gimbal::DefaultCurrentPlacement(stats, topo);
    if (!def.ok()) return Fail(planner, def.status().ToString());
    current = std::move(def).value();
  } else {
    current.layers = layers;
    current.experts = experts;
    current.gpus = topo.gpus;
    current.slots_per_gpu = slots_per_gpu;
    current.phy2log.assign(current_phy2log, current_phy2log + n_slots);
  }
  gimbal::Result<gimbal::Placement> plan = planner->policy->Plan(stats, current, topo);
  if (!plan.ok()) return Fail(planner, plan.status().ToString());
  gimbal::Result<gimbal::PlacementQuality> q =
      gimbal::EvaluatePlacement(stats, *plan, current, topo, planner->policy->weights());
  if (!q.ok()) return Fail(planner, q.status().ToString());
  planner->plan = std::move(plan).value();
  planner->quality = *q;
  planner->planned = true;
  planner->sources = sources;
  planner->error.clear();
  std::memcpy(out_phy2log, planner->plan.phy2log.data(), n_slots * sizeof(int32_t));
  return 0;
}

}  // namespace

extern "C" {

int gimbal_planner_plan(gimbal_planner* planner, const gimbal_topology* topology, int layers,
                        int sources, int experts, int slots_per_gpu, const double* counts,
                        const int32_t* current_phy2log, int32_t* out_phy2log) {
  if (planner == nullptr) return -1;
  // No C++ exception may leave a C function: out of memory is an error like any other.
  try {
    return Plan(planner, topology, layers, sources, experts, slots_per_gpu, counts, current_phy2log,
                out_phy2log);
  } catch (const std::exception& e) {
    return Fail(planner, std::string("gimbal_planner_plan: ") + e.what());
  } catch (...) {
    return Fail(planner, "gimbal_planner_plan: an unknown C++ exception");
  }
}

int gimbal_planner_route(const gimbal_planner* planner, int layer, int source, int expert,
                         int32_t* slots, float* weights, int capacity) {
  if (planner == nullptr) return -1;
  if (!planner->planned) {
    planner->error = "gimbal_planner_route: no plan (gimbal_planner_plan has not succeeded)";
    return -1;
  }
  const gimbal::Placement& p = planner->plan;
  if (layer < 0 || layer >= p.layers || expert < 0 || expert >= p.experts || source < 0 ||
      source >= planner->sources || capacity < 0 ||
      (!p.source_routes.empty() && source >= p.sources)) {
    planner->error = fmt::format(
        "gimbal_planner_route: layer {} (plan has 0..{}), source {} (0..{}), expert {} (0..{}) "
        "or capacity {} (>= 0) out of range",
        layer, p.layers - 1, source, planner->sources - 1, expert, p.experts - 1, capacity);
    return -1;
  }
  const std::vector<gimbal::SlotShare> route = p.Route(layer, source, expert);
  const int n = static_cast<int>(route.size());
  for (int i = 0; i < n && i < capacity; ++i) {
    if (slots) slots[i] = route[i].slot;
    if (weights) weights[i] = route[i].weight;
  }
  return n;
}

int gimbal_planner_quality(const gimbal_planner* planner, gimbal_quality* out) {
  if (planner == nullptr) return -1;
  if (out == nullptr || !planner->planned) {
    planner->error = out == nullptr ? "gimbal_planner_quality: out is NULL"
                                    : "gimbal_planner_quality: no plan (gimbal_planner_plan has "
                                      "not succeeded)";
    return -1;
  }
  out->mean_max_over_mean = planner->quality.mean_max_over_mean;
  out->cross_gpu_fraction = planner->quality.cross_gpu_fraction;
  out->cross_node_fraction = planner->quality.cross_node_fraction;
  out->experts_moved = planner->quality.experts_moved;
  out->objective = planner->quality.objective;
  return 0;
}

const char* gimbal_planner_last_error(const gimbal_planner* planner) {
  return planner == nullptr ? "planner is NULL" : planner->error.c_str();
}

}  // extern "C"
