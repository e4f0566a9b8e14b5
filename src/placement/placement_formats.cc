#include "placement/placement_formats.h"

#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_message.h"
#include "core/yaml_reader.h"

namespace gimbal {

using nlohmann::json;

// Routing statistics.

namespace {

Result<int> PositiveInt(const json& j, const char* key, const std::string& name) {
  if (!j.contains(key)) {
    return InvalidArgument(fmt::format("{}: routing statistics: missing key '{}'", name, key));
  }
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 20)) {
    return InvalidArgument(
        fmt::format("{}: routing statistics: '{}' must be a positive integer, got {}", name, key,
                    JsonForMessage(v)));
  }
  return static_cast<int>(v.get<int64_t>());
}

}  // namespace

Result<SourceExpertCounts> ParseRoutingStatsJson(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error; out_of_range for 1e99999
    return InvalidArgument(fmt::format("{}: malformed JSON: {}", name, e.what()));
  }
  if (!j.is_object()) {
    return InvalidArgument(fmt::format("{}: routing statistics must be a JSON object", name));
  }
  if (j.contains("format") &&
      (!j["format"].is_string() || j["format"].get<std::string>() != "gimbal.routing_stats/1")) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: unknown format {}, expected \"gimbal.routing_stats/1\"", name,
        JsonForMessage(j["format"])));
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
  if (!j.contains("counts")) {
    return InvalidArgument(fmt::format("{}: routing statistics: missing key 'counts'", name));
  }
  const json& c = j["counts"];
  if (!c.is_array() || c.size() != static_cast<size_t>(*layers)) {
    return InvalidArgument(fmt::format(
        "{}: routing statistics: 'counts' must be an array of {} layers, got {}", name, *layers,
        c.is_array() ? std::to_string(c.size()) + " entries" : std::string(c.type_name())));
  }
  SourceExpertCounts out = SourceExpertCounts::Zeros(*layers, *sources, *experts);
  for (int l = 0; l < *layers; ++l) {
    const json& lj = c[static_cast<size_t>(l)];
    if (!lj.is_array() || lj.size() != static_cast<size_t>(*sources)) {
      return InvalidArgument(fmt::format(
          "{}: routing statistics: layer {}: expected an array of {} sources, got {}", name, l,
          *sources, lj.is_array() ? std::to_string(lj.size()) : std::string(lj.type_name())));
    }
    for (int s = 0; s < *sources; ++s) {
      const json& sj = lj[static_cast<size_t>(s)];
      if (!sj.is_array() || sj.size() != static_cast<size_t>(*experts)) {
        return InvalidArgument(fmt::format(
            "{}: routing statistics: layer {}, source {}: expected an array of {} expert counts, "
            "got {}",
            name, l, s, *experts,
            sj.is_array() ? std::to_string(sj.size()) : std::string(sj.type_name())));
      }
      for (int x = 0; x < *experts; ++x) {
        const json& v = sj[static_cast<size_t>(x)];
        if (!v.is_number()) {
          return InvalidArgument(fmt::format(
              "{}: routing statistics: layer {}, source {}, expert {}: expected a number, got {}",
              name, l, s, x, JsonForMessage(v)));
        }
        out.At(l, s, x) = v.get<double>();
      }
    }
  }
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
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error; out_of_range for 1e99999
    return InvalidArgument(fmt::format("{}: malformed JSON: {}", name, e.what()));
  }
  if (!j.is_object())
    return InvalidArgument(fmt::format("{}: placement must be a JSON object", name));
  Placement p;
  for (const auto& [key, field] :
       {std::pair{"layers", &p.layers}, std::pair{"experts", &p.experts},
        std::pair{"gpus", &p.gpus}, std::pair{"slots_per_gpu", &p.slots_per_gpu}}) {
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
      return InvalidArgument(
          fmt::format("{}: placement: phy2log layer {}: expected {} slots ({} GPUs x {})", name, l,
                      p.slots(), p.gpus, p.slots_per_gpu));
    }
    for (int s = 0; s < p.slots(); ++s) {
      const json& v = lj[static_cast<size_t>(s)];
      if (!v.is_number_integer()) {
        return InvalidArgument(
            fmt::format("{}: placement: phy2log layer {} slot {}: expected an "
                        "expert index, got {}",
                        name, l, s, JsonForMessage(v)));
      }
      // Range-checked before narrowing: 2^32 + 5 would otherwise pass as expert 5.
      const bool in_range = v.is_number_unsigned()
                                ? v.get<uint64_t>() < static_cast<uint64_t>(p.experts)
                                : v.get<int64_t>() >= 0 && v.get<int64_t>() < p.experts;
      if (!in_range) {
        return InvalidArgument(fmt::format(
            "{}: placement: phy2log layer {} slot {}: expert {} is out of range [0, {})", name, l,
            s, JsonForMessage(v), p.experts));
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
