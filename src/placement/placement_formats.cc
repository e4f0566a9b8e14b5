#include "placement/placement_formats.h"

#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_message.h"
#include "core/yaml_reader.h"
#include "placement/json_scan.h"

namespace gimbal {

using nlohmann::json;

// Routing statistics.

namespace {

// A value the scan kept, for a message: its arrays and objects stand in empty (json_scan.h).
std::string Got(const json& v) {
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return JsonForMessage(v);
}

Result<int> PositiveInt(const json& j, const char* key, const std::string& name) {
  if (!j.contains(key)) {
    return InvalidArgument(fmt::format("{}: routing statistics: missing key '{}'", name, key));
  }
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 20)) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: '{}' must be a positive integer, got {}", name, key, Got(v)));
  }
  return static_cast<int>(v.get<int64_t>());
}

}  // namespace

Result<SourceExpertCounts> ParseRoutingStatsJson(const std::string& text, const std::string& name) {
  // Scanned, not built: see json_scan.h. More counts than kMaxRoutingCells cannot be valid, nor
  // more arrays than one per source and layer (an expert each at least) and the outer one.
  Result<JsonObjectScan> scanned =
      ScanJsonObject(text, name, "counts", 3, /*integers=*/false, kMaxRoutingCells,
                     kMaxRoutingCells + (1 << 20) + 1);
  if (!scanned.ok()) return scanned.status();
  if (scanned->not_object) {
    return InvalidArgument(fmt::format("{}: routing statistics must be a JSON object", name));
  }
  const json& j = scanned->scalars;
  NestedNumbers& c = scanned->field;
  if (j.contains("format") &&
      (!j["format"].is_string() || j["format"].get<std::string>() != "gimbal.routing_stats/1")) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: unknown format {}, expected \"gimbal.routing_stats/1\"", name,
        Got(j["format"])));
  }
  Result<int> layers = PositiveInt(j, "layers", name);
  if (!layers.ok()) return layers.status();
  Result<int> sources = PositiveInt(j, "sources", name);
  if (!sources.ok()) return sources.status();
  Result<int> experts = PositiveInt(j, "experts", name);
  if (!experts.ok()) return experts.status();
  const int64_t cells = int64_t{*layers} * *sources * *experts;  // each <= 2^20: no overflow
  if (cells > kMaxRoutingCells) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: {} layers x {} sources x {} experts = {} counts, more than the "
        "{} allowed",
        name, *layers, *sources, *experts, cells, kMaxRoutingCells));
  }
  if (!c.present) {
    return InvalidArgument(fmt::format("{}: routing statistics: missing key 'counts'", name));
  }
  if (c.not_array || c.lengths[0][0] != *layers) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: 'counts' must be an array of {} layers, got {}", name, *layers,
        c.not_array ? std::string(c.not_array->type_name())
                    : std::to_string(c.lengths[0][0]) + " entries"));
  }
  // In the order a reader walks it: each array's length before its elements. The first misfit
  // (c.bad) is the first element of length -1, or the first value out of place, met on the way.
  const std::string got = c.bad ? Got(c.bad->second) : "";
  const auto& per_layer = c.lengths[1];
  const auto& per_source = c.lengths[2];
  size_t next_source = 0;  // per_source's entries, layer by layer
  for (int l = 0; l < *layers; ++l) {
    const int64_t n = per_layer[static_cast<size_t>(l)];
    if (n != *sources) {
      return InvalidArgument(
          fmt::format("{}: routing statistics: layer {}: expected an array of {} sources, got {}",
                      name, l, *sources, n < 0 ? got : std::to_string(n)));
    }
    for (int s = 0; s < *sources; ++s) {
      const int64_t m = per_source[next_source++];
      if (m != *experts) {
        return InvalidArgument(fmt::format(
            "{}: routing statistics: layer {}, source {}: expected an array of {} expert counts, "
            "got {}",
            name, l, s, *experts, m < 0 ? got : std::to_string(m)));
      }
      if (c.bad && c.bad->first.size() == 3 && c.bad->first[0] == l && c.bad->first[1] == s) {
        return InvalidArgument(fmt::format(
            "{}: routing statistics: layer {}, source {}, expert {}: expected a number, got {}",
            name, l, s, c.bad->first[2], got));
      }
    }
  }
  if (c.values.size() != static_cast<size_t>(cells)) {  // every misfit was reported above
    return InvalidArgument(fmt::format("{}: routing statistics: {} counts read, expected {}", name,
                                       c.values.size(), cells));
  }
  SourceExpertCounts out;
  out.layers = *layers;
  out.sources = *sources;
  out.experts = *experts;
  out.counts = std::move(c.values);  // every array has its length, no misfit: L x S x E, in order
  Status st = out.Validate();
  if (!st.ok()) return st.WithContext(name);
  return out;
}

Result<SourceExpertCounts> LoadRoutingStats(const std::string& path) {
  Result<std::string> text =
      ReadConfigFile(path, "routing statistics file", kMaxRoutingStatsFileBytes);
  if (!text.ok()) return text.status();
  return ParseRoutingStatsJson(*text, path);
}

std::string RoutingStatsToJson(const SourceExpertCounts& stats) {
  json counts = json::array();
  for (int l = 0; l < stats.layers; ++l) {
    json lj = json::array();
    for (int s = 0; s < stats.sources; ++s) {
      json sj = json::array();
      for (int x = 0; x < stats.experts; ++x) sj.push_back(stats.At(l, s, x));
      lj.push_back(std::move(sj));
    }
    counts.push_back(std::move(lj));
  }
  json j = {{"format", "gimbal.routing_stats/1"},
            {"layers", stats.layers},
            {"sources", stats.sources},
            {"experts", stats.experts},
            {"counts", std::move(counts)}};
  return j.dump();
}

// Topology.

Result<PlacementTopology> ParseTopology(const std::string& text, const std::string& name) {
  Result<YamlReader> r = YamlReader::FromString(text, name);
  if (!r.ok()) return r.status();
  const YamlReader& y = *r;
  if (!y.IsMap()) return InvalidArgument(fmt::format("{}: topology must be a map", name));
  PlacementTopology t;
  t.gpus = static_cast<int>(y.Int("gpus", std::nullopt, 1, 1 << 20));
  t.gpus_per_node = static_cast<int>(y.Int("gpus_per_node", int64_t{0}, 0, 1 << 20));
  t.alpha = y.Double("alpha", 0.2, 0, kMaxHopCost);
  t.beta = y.Double("beta", 1.0, 0, kMaxHopCost);
  t.slots_per_gpu = static_cast<int>(y.Int("slots_per_gpu", int64_t{0}, 0, 1 << 20));
  t.expert_groups = static_cast<int>(y.Int("expert_groups", int64_t{1}, 1, 1 << 20));
  t.expert_bytes = y.Double("expert_bytes", 1.0, 1e-30, kMaxExpertBytes);
  y.CheckKeys(
      {"gpus", "gpus_per_node", "alpha", "beta", "slots_per_gpu", "expert_groups", "expert_bytes"});
  if (!y.ok()) return y.status();
  Status st = t.Validate();
  if (!st.ok()) return st.WithContext(name);
  return t;
}

Result<PlacementTopology> LoadTopology(const std::string& path) {
  Result<std::string> text = ReadConfigFile(path, "topology file");
  if (!text.ok()) return text.status();
  return ParseTopology(*text, path);
}

// Placement.

Result<Placement> ParsePlacementJson(const std::string& text, const std::string& name) {
  // Scanned, not built: see json_scan.h. Only the shape and phy2log are read; logcnt, log2phy
  // and source_routes are derived, and dropped unbuilt.
  Result<JsonObjectScan> scanned =
      ScanJsonObject(text, name, "phy2log", 2, /*integers=*/true, kMaxRoutingCells, (1 << 20) + 1);
  if (!scanned.ok()) return scanned.status();
  if (scanned->not_object) {
    return InvalidArgument(fmt::format("{}: placement must be a JSON object", name));
  }
  const json& j = scanned->scalars;
  NestedNumbers& phy = scanned->field;
  Placement p;
  for (const auto& [key, field] :
       {std::pair{"layers", &p.layers}, std::pair{"experts", &p.experts},
        std::pair{"gpus", &p.gpus}, std::pair{"slots_per_gpu", &p.slots_per_gpu}}) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
        j[key].get<int64_t>() > (1 << 20)) {
      return InvalidArgument(fmt::format("{}: placement: '{}' must be a positive integer{}", name,
                                         key,
                                         j.contains(key) ? ", got " + Got(j[key]) : " (missing)"));
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
  if (!phy.present || phy.not_array || phy.lengths[0][0] != p.layers) {
    return InvalidArgument(
        fmt::format("{}: placement: 'phy2log' must be an array of {} layers", name, p.layers));
  }
  // Each layer's length before its slots, as a reader walks it (see ParseRoutingStatsJson).
  for (int l = 0; l < p.layers; ++l) {
    if (phy.lengths[1][static_cast<size_t>(l)] != p.slots()) {
      return InvalidArgument(
          fmt::format("{}: placement: phy2log layer {}: expected {} slots ({} GPUs x {})", name, l,
                      p.slots(), p.gpus, p.slots_per_gpu));
    }
    if (phy.bad && phy.bad->first.size() == 2 && phy.bad->first[0] == l) {
      return InvalidArgument(
          fmt::format("{}: placement: phy2log layer {} slot {}: expected an expert index, got {}",
                      name, l, phy.bad->first[1], Got(phy.bad->second)));
    }
  }
  if (phy.values.size() != static_cast<size_t>(p.layers * slots)) {  // misfits were reported
    return InvalidArgument(fmt::format("{}: placement: {} slots read, expected {}", name,
                                       phy.values.size(), p.layers * slots));
  }
  p.phy2log.reserve(phy.values.size());
  for (size_t i = 0; i < phy.values.size(); ++i) {
    const double v = phy.values[i];  // an integer (the scan took no other)
    if (!(v >= 0 && v < p.experts)) {
      // The first such value: the first beyond 2^53, if it is, is kept as written.
      const std::string written = phy.first_inexact && phy.first_inexact->first == i
                                      ? JsonForMessage(phy.first_inexact->second)
                                      : std::to_string(static_cast<int64_t>(v));
      const size_t slots_per_layer = static_cast<size_t>(p.slots());
      return InvalidArgument(
          fmt::format("{}: placement: phy2log layer {} slot {}: expert {} is out of range [0, {})",
                      name, i / slots_per_layer, i % slots_per_layer, written, p.experts));
    }
    p.phy2log.push_back(static_cast<int32_t>(v));
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

json PlacementJsonValue(const Placement& p) {
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
  json j = {{"format", "gimbal.placement/1"},
            {"layers", p.layers},
            {"experts", p.experts},
            {"gpus", p.gpus},
            {"slots_per_gpu", p.slots_per_gpu},
            {"phy2log", std::move(phy)},
            {"logcnt", std::move(cnt)},
            {"log2phy", std::move(l2p)}};
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

std::string PlacementToJson(const Placement& placement) {
  return PlacementJsonValue(placement).dump();
}

}  // namespace gimbal
