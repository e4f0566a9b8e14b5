#include "policy/placement/place_tool.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/json_message.h"
#include "core/yaml_reader.h"
#include "policy/placement/placement_policy.h"

namespace gimbal {

using nlohmann::json;

Result<Placement> ParsePlacementJson(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error; out_of_range for 1e99999
    return InvalidArgument(fmt::format("{}: malformed JSON: {}", name, e.what()));
  }
  if (!j.is_object()) return InvalidArgument(fmt::format("{}: placement must be a JSON object", name));
  Placement p;
  for (const auto& [key, field] : {std::pair{"layers", &p.layers}, std::pair{"experts", &p.experts},
                                   std::pair{"gpus", &p.gpus},
                                   std::pair{"slots_per_gpu", &p.slots_per_gpu}}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
        j[key].get<int64_t>() > (1 << 20)) {
      return InvalidArgument(
          fmt::format("{}: placement: '{}' must be a positive integer{}", name, key,
                      j.contains(key) ? ", got " + JsonForMessage(j[key]) : " (missing)"));
    }
    *field = static_cast<int>(j[key].get<int64_t>());
  }
  const int64_t slots = int64_t{p.gpus} * p.slots_per_gpu;
  if (slots > (1 << 20) || p.layers * slots > kMaxRoutingCells) {
    return InvalidArgument(fmt::format(
        "{}: placement: {} layers x {} GPUs x {} slots per GPU is more than {} slots per layer or "
        "{} in all",
        name, p.layers, p.gpus, p.slots_per_gpu, 1 << 20, kMaxRoutingCells));
  }
  if (!j.contains("phy2log") || !j["phy2log"].is_array() ||
      j["phy2log"].size() != static_cast<size_t>(p.layers)) {
    return InvalidArgument(
        fmt::format("{}: placement: 'phy2log' must be an array of {} layers", name, p.layers));
  }
  for (int l = 0; l < p.layers; ++l) {
    const json& lj = j["phy2log"][static_cast<size_t>(l)];
    if (!lj.is_array() || lj.size() != static_cast<size_t>(p.slots())) {
      return InvalidArgument(fmt::format("{}: placement: phy2log layer {}: expected {} slots ({} GPUs x {})",
                                         name, l, p.slots(), p.gpus, p.slots_per_gpu));
    }
    for (int s = 0; s < p.slots(); ++s) {
      const json& v = lj[static_cast<size_t>(s)];
      if (!v.is_number_integer()) {
        return InvalidArgument(fmt::format("{}: placement: phy2log layer {} slot {}: expected an "
                                           "expert index, got {}",
                                           name, l, s, JsonForMessage(v)));
      }
      p.phy2log.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
  }
  Status st = p.Validate();
  if (!st.ok()) return st.WithContext(name);
  return p;
}

Result<Placement> LoadPlacement(const std::string& path) {
  Result<std::string> text = ReadConfigFile(path, "placement file", kMaxRoutingStatsFileBytes);
  if (!text.ok()) return text.status();
  return ParsePlacementJson(*text, path);
}

namespace {

json PlacementJson(const Placement& p) {
  json phy = json::array(), cnt = json::array(), l2p = json::array();
  const auto log2phy = p.Log2Phy();
  for (int l = 0; l < p.layers; ++l) {
    json row = json::array();
    for (int s = 0; s < p.slots(); ++s) row.push_back(p.Expert(l, s));
    phy.push_back(std::move(row));
    json c = json::array(), m = json::array();
    for (int x = 0; x < p.experts; ++x) {
      c.push_back(log2phy[l][x].size());
      m.push_back(log2phy[l][x]);
    }
    cnt.push_back(std::move(c));
    l2p.push_back(std::move(m));
  }
  json j = {{"format", "gimbal.placement/1"}, {"layers", p.layers},
            {"experts", p.experts},           {"gpus", p.gpus},
            {"slots_per_gpu", p.slots_per_gpu}, {"phy2log", std::move(phy)},
            {"logcnt", std::move(cnt)},       {"log2phy", std::move(l2p)}};
  if (!p.source_routes.empty()) {
    json routes = json::array();
    for (int l = 0; l < p.layers; ++l) {
      json lj = json::array();
      for (int s = 0; s < p.sources; ++s) {
        json sj = json::array();
        for (int x = 0; x < p.experts; ++x) {
          json xj = json::array();
          for (const SlotShare& sh :
               p.source_routes[(static_cast<size_t>(l) * p.sources + s) * p.experts + x]) {
            xj.push_back(json::array({sh.slot, sh.weight}));
          }
          sj.push_back(std::move(xj));
        }
        lj.push_back(std::move(sj));
      }
      routes.push_back(std::move(lj));
    }
    j["sources"] = p.sources;
    j["source_routes"] = std::move(routes);
  }
  return j;
}

json QualityJson(const PlacementQuality& q) {
  json layers = json::array();
  for (const LayerEval& e : q.layers) {
    layers.push_back({{"max_load", e.max_load},
                      {"mean_load", e.mean_load},
                      {"max_over_mean", e.max_over_mean()},
                      {"cross_gpu_fraction", e.total_tokens > 0 ? e.cross_gpu_tokens / e.total_tokens : 0},
                      {"cross_node_fraction", e.total_tokens > 0 ? e.cross_node_tokens / e.total_tokens : 0},
                      {"experts_moved", e.experts_moved},
                      {"objective", e.objective}});
  }
  return {{"mean_max_over_mean", q.mean_max_over_mean},
          {"worst_max_over_mean", q.worst_max_over_mean},
          {"cross_gpu_fraction", q.cross_gpu_fraction},
          {"cross_node_fraction", q.cross_node_fraction},
          {"experts_moved", q.experts_moved},
          {"bytes_moved", q.bytes_moved},
          {"objective", q.objective},
          {"layers", std::move(layers)}};
}

// InvalidArgument naming the first non-finite number of a report (a plan is never printed with
// one: they come from inputs too large for double arithmetic).
Status CheckFinite(const PlaceReport& r) {
  std::string bad;
  // `what` is formatted only for a bad value.
  auto check = [&](double v, const auto& what) {
    if (bad.empty() && !std::isfinite(v)) bad = fmt::format("{} is {}", what(), v);
  };
  for (const auto& [label, q] :
       {std::pair{"plan", &r.quality}, std::pair{"current placement", &r.current_quality}}) {
    const std::string name = label;
    check(q->mean_max_over_mean, [&] { return name + " mean max/mean"; });
    check(q->worst_max_over_mean, [&] { return name + " worst max/mean"; });
    check(q->cross_gpu_fraction, [&] { return name + " cross-GPU fraction"; });
    check(q->cross_node_fraction, [&] { return name + " cross-node fraction"; });
    check(q->bytes_moved, [&] { return name + " bytes moved"; });
    check(q->objective, [&] { return name + " objective"; });
    for (size_t l = 0; l < q->layers.size(); ++l) {
      const LayerEval& e = q->layers[l];
      for (const auto& [field, v] :
           {std::pair{"max load", e.max_load}, std::pair{"mean load", e.mean_load},
            std::pair{"cross-GPU tokens", e.cross_gpu_tokens},
            std::pair{"cross-node tokens", e.cross_node_tokens},
            std::pair{"tokens", e.total_tokens}, std::pair{"traffic cost", e.traffic_cost},
            std::pair{"objective", e.objective}}) {
        const char* f = field;
        check(v, [&] { return fmt::format("{} layer {} {}", name, l, f); });
      }
    }
  }
  for (size_t i = 0; i < r.plan.source_routes.size(); ++i) {
    for (const SlotShare& sh : r.plan.source_routes[i]) {
      check(sh.weight, [&] { return fmt::format("plan source route {} weight", i); });
    }
  }
  if (bad.empty()) return Status::Ok();
  return InvalidArgument(fmt::format(
      "policy {}: the evaluation is not finite ({}); refusing to print the plan (are the "
      "statistics, topology costs or --set weights too large?)",
      r.policy, bad));
}

}  // namespace

std::string PlacementToJson(const Placement& placement) { return PlacementJson(placement).dump(); }

Result<PlaceReport> RunPlace(const PlaceOptions& options) {
  PlaceReport r;
  r.policy = options.policy;
  Result<SourceExpertCounts> stats = LoadRoutingStats(options.stats_path);
  if (!stats.ok()) return stats.status();
  r.stats = std::move(stats).value();
  Result<PlacementTopology> topo = LoadTopology(options.topology_path);
  if (!topo.ok()) return topo.status();
  r.topology = *topo;
  if (options.current_path.empty()) {
    Result<Placement> cur = DefaultCurrentPlacement(r.stats, r.topology);
    if (!cur.ok()) return cur.status();
    r.current = std::move(cur).value();
  } else {
    Result<Placement> cur = LoadPlacement(options.current_path);
    if (!cur.ok()) return cur.status();
    r.current = std::move(cur).value();
  }
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(r.stats, r.current, r.topology));
  Params params;
  for (const std::string& kv : options.sets) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument(fmt::format("--set '{}': expected key=value", kv));
    }
    params.Set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  Result<std::unique_ptr<PlacementPolicy>> policy = MakePlacementPolicy(options.policy, params);
  if (!policy.ok()) return policy.status();
  const auto t0 = std::chrono::steady_clock::now();
  Result<Placement> plan = (*policy)->Plan(r.stats, r.current, r.topology);
  r.plan_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!plan.ok()) return plan.status();
  r.plan = std::move(plan).value();
  GIMBAL_RETURN_IF_ERROR(r.plan.Validate().WithContext("plan of policy " + options.policy));
  const ObjectiveWeights w = (*policy)->weights();
  Result<PlacementQuality> q = EvaluatePlacement(r.stats, r.plan, r.current, r.topology, w);
  if (!q.ok()) return q.status();
  r.quality = *q;
  Result<PlacementQuality> cq = EvaluatePlacement(r.stats, r.current, r.current, r.topology, w);
  if (!cq.ok()) return cq.status();
  r.current_quality = *cq;
  GIMBAL_RETURN_IF_ERROR(CheckFinite(r));
  return r;
}

std::string FormatPlaceReport(const PlaceReport& r) {
  std::string out = fmt::format(
      "policy {}: {} layers, {} experts, {} GPUs x {} slots ({} per node), {} sources; planned in "
      "{:.1f} ms\n",
      r.policy, r.plan.layers, r.plan.experts, r.plan.gpus, r.plan.slots_per_gpu,
      r.topology.gpus_per_node > 0 ? r.topology.gpus_per_node : r.topology.gpus, r.stats.sources,
      r.plan_seconds * 1e3);
  out += fmt::format("{:>6} | {:>8} {:>9} {:>10} {:>6} {:>9} | {:>8} {:>10} {:>9}\n", "layer",
                     "max/mean", "cross-GPU", "cross-node", "moved", "objective", "cur m/m",
                     "cur x-node", "cur obj");
  auto frac = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (size_t l = 0; l < r.quality.layers.size(); ++l) {
    const LayerEval& e = r.quality.layers[l];
    const LayerEval& c = r.current_quality.layers[l];
    out += fmt::format("{:>6} | {:>8.3f} {:>9.3f} {:>10.3f} {:>6} {:>9.4f} | {:>8.3f} {:>10.3f} {:>9.4f}\n",
                       l, e.max_over_mean(), frac(e.cross_gpu_tokens, e.total_tokens),
                       frac(e.cross_node_tokens, e.total_tokens), e.experts_moved, e.objective,
                       c.max_over_mean(), frac(c.cross_node_tokens, c.total_tokens), c.objective);
  }
  const PlacementQuality& q = r.quality;
  const PlacementQuality& c = r.current_quality;
  out += fmt::format("{:>6} | {:>8.3f} {:>9.3f} {:>10.3f} {:>6} {:>9.4f} | {:>8.3f} {:>10.3f} {:>9.4f}\n",
                     "all", q.mean_max_over_mean, q.cross_gpu_fraction, q.cross_node_fraction,
                     q.experts_moved, q.objective, c.mean_max_over_mean, c.cross_node_fraction,
                     c.objective);
  out += fmt::format("bytes migrated: {:.4g} (max/mean is the mean over layers; crossing fractions "
                     "are token-weighted)\n",
                     q.bytes_moved);
  return out;
}

std::string PlaceReportToJson(const PlaceReport& r) {
  json j = {{"policy", r.policy},
            {"plan_seconds", r.plan_seconds},
            {"placement", PlacementJson(r.plan)},
            {"quality", QualityJson(r.quality)},
            {"current_quality", QualityJson(r.current_quality)}};
  return j.dump(1);
}

}  // namespace gimbal
