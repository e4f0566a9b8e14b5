// gimbal_planner._planner: the placement planner's C API (include/gimbal/placement_c.h) as a
// Python class. The Python side (gimbal_planner/eplb_policy.py) checks shapes and values and
// shapes the results the way vLLM's EPLB expects; this module only moves arrays across and turns
// the C API's error codes into ValueError with the planner's message.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "gimbal/placement_c.h"

namespace py = pybind11;

namespace {

using Counts = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Phy2Log = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// A current phy2log as int32, from any integer array: forcecast alone would wrap an int64 id of
// 2^32 + 1 to 1 and truncate a float id of 0.5 to 0, making a placement nobody sent.
Phy2Log CurrentPhy2Log(const py::object& obj) {
  // Any array-like (a list, a numpy or torch array): numpy's conversion, then the checks.
  const py::array a = py::module_::import("numpy").attr("asarray")(obj);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::value_error("current phy2log must be an integer array, got dtype " +
                          std::string(py::str(a.dtype())));
  }
  using Wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
  if (kind == 'u' && a.itemsize() == 8) {
    const auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    for (py::ssize_t i = 0; i < u.size(); ++i) {
      if (u.data()[i] > static_cast<uint64_t>(INT32_MAX)) {
        throw py::value_error("current phy2log: entry " + std::to_string(i) + " (" +
                              std::to_string(u.data()[i]) + ") is not an expert index");
      }
    }
  }
  const Wide w = Wide::ensure(a);
  for (py::ssize_t i = 0; i < w.size(); ++i) {
    const int64_t v = w.data()[i];
    if (v < INT32_MIN || v > INT32_MAX) {
      throw py::value_error("current phy2log: entry " + std::to_string(i) + " (" +
                            std::to_string(v) + ") is not an expert index");
    }
  }
  return Phy2Log::ensure(w);
}

// A dimension of counts as the C API's int, refused when it does not fit (a silent cast would
// plan 4 experts for 2^32 + 4).
int Dimension(const Counts& counts, int i, const char* name) {
  const py::ssize_t n = counts.shape(i);
  if (n > INT32_MAX) {
    throw py::value_error(std::string("counts: ") + name + " (" + std::to_string(n) +
                          ") is more than the planner takes (" + std::to_string(INT32_MAX) + ")");
  }
  return static_cast<int>(n);
}

// One gimbal_planner; not thread-safe (the C API's contract), so calls hold the GIL except while
// a plan runs, during which the planner is marked busy.
class Planner {
 public:
  Planner(const std::string& policy, const std::string& params) {
    // The C API reads C strings: a NUL inside one would silently cut off what follows it (an
    // unknown key after it went unreported).
    if (policy.find('\0') != std::string::npos || params.find('\0') != std::string::npos) {
      throw py::value_error("Planner: policy and params must not contain NUL characters");
    }
    std::vector<char> err(1024, '\0');
    planner_ = gimbal_planner_create(policy.c_str(), params.c_str(), err.data(), err.size());
    if (planner_ == nullptr) throw py::value_error(std::string(err.data()));
    policy_ = policy;
  }
  ~Planner() { gimbal_planner_destroy(planner_); }
  Planner(const Planner&) = delete;
  Planner& operator=(const Planner&) = delete;

  // counts: [layers, sources, experts]; current: [layers, gpus * slots_per_gpu] or None.
  // Returns the new phy2log, [layers, gpus * slots_per_gpu], int32.
  Phy2Log Plan(const Counts& counts, const gimbal_topology& topology, int slots_per_gpu,
               const std::optional<py::object>& current_any) {
    if (counts.ndim() != 3) throw py::value_error("counts must be [layers, sources, experts]");
    const int layers = Dimension(counts, 0, "layers");
    const int sources = Dimension(counts, 1, "sources");
    const int experts = Dimension(counts, 2, "experts");
    std::optional<Phy2Log> current;
    if (current_any) current = CurrentPhy2Log(*current_any);
    const py::ssize_t slots = static_cast<py::ssize_t>(topology.gpus) * slots_per_gpu;
    if (current &&
        (current->ndim() != 2 || current->shape(0) != layers || current->shape(1) != slots)) {
      throw py::value_error("current phy2log must be [layers, gpus * slots_per_gpu]");
    }
    if (busy_) throw py::value_error("planner is already planning (one call at a time)");
    Phy2Log out({static_cast<py::ssize_t>(layers), slots});
    const double* in = counts.data();
    const int32_t* cur = current ? current->data() : nullptr;
    int32_t* dst = out.mutable_data();
    int rc = 0;
    busy_ = true;
    {
      py::gil_scoped_release release;
      rc = gimbal_planner_plan(planner_, &topology, layers, sources, experts, slots_per_gpu, in,
                               cur, dst);
    }
    busy_ = false;
    if (rc != 0) throw py::value_error(std::string(gimbal_planner_last_error(planner_)));
    return out;
  }

  // After a plan: (slot, weight) pairs for one source's tokens to one expert.
  std::vector<std::pair<int32_t, float>> Route(int layer, int source, int expert) const {
    CheckIdle();
    int n = gimbal_planner_route(planner_, layer, source, expert, nullptr, nullptr, 0);
    if (n < 0) throw py::value_error("no plan yet, or layer/source/expert out of range");
    std::vector<int32_t> slots(static_cast<size_t>(n));
    std::vector<float> weights(static_cast<size_t>(n));
    const int capacity = n;
    n = gimbal_planner_route(planner_, layer, source, expert, slots.data(), weights.data(), n);
    std::vector<std::pair<int32_t, float>> route;
    for (int i = 0; i < std::min(n, capacity); ++i) route.emplace_back(slots[i], weights[i]);
    return route;
  }

  // After a plan: its quality against the current placement, by the policy's own objective.
  py::dict Quality() const {
    CheckIdle();
    gimbal_quality q{};
    if (gimbal_planner_quality(planner_, &q) != 0) throw py::value_error("no plan yet");
    py::dict d;
    d["mean_max_over_mean"] = q.mean_max_over_mean;
    d["cross_gpu_fraction"] = q.cross_gpu_fraction;
    d["cross_node_fraction"] = q.cross_node_fraction;
    d["experts_moved"] = q.experts_moved;
    d["objective"] = q.objective;
    return d;
  }

  const std::string& policy() const { return policy_; }

 private:
  // route() and quality() read the plan that plan() replaces while it runs without the GIL: from
  // another thread then, they would read it as it is freed.
  void CheckIdle() const {
    if (busy_) throw py::value_error("planner is planning: route() and quality() wait for plan()");
  }

  gimbal_planner* planner_ = nullptr;
  std::string policy_;
  bool busy_ = false;
};

gimbal_topology MakeTopology(int gpus, int gpus_per_node, double alpha, double beta,
                             int expert_groups, double expert_bytes) {
  gimbal_topology t{};
  t.gpus = gpus;
  t.gpus_per_node = gpus_per_node;
  t.alpha = alpha;
  t.beta = beta;
  t.expert_groups = expert_groups;
  t.expert_bytes = expert_bytes;
  return t;
}

}  // namespace

PYBIND11_MODULE(_planner, m) {
  m.doc() = "Gimbal's expert placement planner (C API of include/gimbal/placement_c.h)";
  py::class_<Planner>(m, "Planner")
      .def(py::init<const std::string&, const std::string&>(), py::arg("policy") = "gimbal",
           py::arg("params") = "",
           "A planner for policy 'gimbal', 'eplb' or 'exact'; params 'key=value;...' as for "
           "`gimbal place --set`. ValueError for an unknown policy or parameter.")
      .def(
          "plan",
          [](Planner& self, const Counts& counts, int gpus, int gpus_per_node, double alpha,
             double beta, int expert_groups, double expert_bytes, int slots_per_gpu,
             const std::optional<py::object>& current) {
            return self.Plan(
                counts, MakeTopology(gpus, gpus_per_node, alpha, beta, expert_groups, expert_bytes),
                slots_per_gpu, current);
          },
          py::arg("counts"), py::arg("gpus"), py::arg("gpus_per_node"), py::arg("alpha"),
          py::arg("beta"), py::arg("expert_groups"), py::arg("expert_bytes"),
          py::arg("slots_per_gpu"), py::arg("current") = py::none(),
          "Plans every layer; returns phy2log [layers, gpus * slots_per_gpu] (int32).")
      .def("route", &Planner::Route, py::arg("layer"), py::arg("source"), py::arg("expert"))
      .def("quality", &Planner::Quality)
      .def_property_readonly("policy", &Planner::policy);
}
