#include "experiment/live.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "core/json_depth.h"
#include "experiment/runner.h"

namespace gimbal::experiment {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kDetailKeys = {"input_lens", "output_lens", "ttfts", "itls",
                                              "errors"};
const std::vector<std::string> kRateKeys = {"request_throughput", "request_goodput",
                                            "output_throughput", "total_token_throughput"};

Result<nlohmann::ordered_json> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("{}: cannot open", path.string()));
  auto parsed = ParseJsonBounded<nlohmann::ordered_json>(in);
  if (!parsed.ok())
    return InvalidArgument(fmt::format("{}: {}", path.string(), parsed.status().message()));
  return parsed;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The bench keys in the model's clock.
nlohmann::ordered_json Rescale(const nlohmann::ordered_json& bench, double time_scale) {
  nlohmann::ordered_json s;
  for (auto it = bench.begin(); it != bench.end(); ++it) {
    bool detail = false;
    for (const auto& k : kDetailKeys) detail = detail || it.key() == k;
    if (detail) continue;
    nlohmann::ordered_json v = it.value();
    if (v.is_number() && time_scale != 1) {
      const double x = v.get<double>();
      bool rate = false;
      for (const auto& k : kRateKeys) rate = rate || it.key() == k;
      if (rate) v = x * time_scale;
      if (EndsWith(it.key(), "_ms") || it.key() == "duration") v = x / time_scale;
    }
    s[it.key()] = v;
  }
  return s;
}

// The request CSV of a bench result with per-request arrays; empty when it has none.
std::string RequestsCsv(const nlohmann::ordered_json& bench, double time_scale) {
  if (!bench.contains("ttfts") || !bench["ttfts"].is_array()) return "";
  std::string s =
      "id,engine,class,arrival_s,first_token_s,finish_s,prompt_tokens,output_tokens,preemptions,"
      "ttft_ms,e2el_ms\n";
  const auto& ttfts = bench["ttfts"];
  auto at = [&](const char* key, size_t i) -> const nlohmann::ordered_json* {
    if (!bench.contains(key) || !bench[key].is_array() || i >= bench[key].size()) return nullptr;
    return &bench[key][i];
  };
  for (size_t i = 0; i < ttfts.size(); ++i) {
    const auto* err = at("errors", i);
    const bool ok = err == nullptr || (err->is_string() && err->get<std::string>().empty());
    const auto* in = at("input_lens", i);
    const auto* out = at("output_lens", i);
    double e2e = ttfts[i].is_number() ? ttfts[i].get<double>() : 0.0;
    if (const auto* itl = at("itls", i); itl != nullptr && itl->is_array()) {
      for (const auto& g : *itl) e2e += g.is_number() ? g.get<double>() : 0.0;
    }
    const double ttft = ttfts[i].is_number() ? ttfts[i].get<double>() : 0.0;
    // Counts only: any other value (a nested one would recurse in dump()) leaves the cell empty.
    auto count = [](const nlohmann::ordered_json* v) {
      return v != nullptr && v->is_number() ? v->dump() : std::string();
    };
    s += fmt::format("{},,,,,,{},{},,{},{}\n", i, count(in), count(out),
                     ok ? fmt::format("{:.4f}", ttft * 1e3 / time_scale) : "",
                     ok ? fmt::format("{:.4f}", e2e * 1e3 / time_scale) : "");
  }
  return s;
}

double Number(const nlohmann::ordered_json& j, const std::string& key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

}  // namespace

Result<nlohmann::ordered_json> LoadLivePoints(const std::string& live_dir,
                                              const std::string& requests_dir) {
  const fs::path dir(live_dir);
  const fs::path manifest_path = dir / "live.json";
  auto m = ReadJsonFile(manifest_path);
  if (!m.ok()) {
    return m.status().WithContext(
        "live results need a live.json manifest (scripts/live-demo.sh writes one; "
        "docs/experiments.md)");
  }
  const std::string where = manifest_path.string();
  if (!m->is_object()) return InvalidArgument(fmt::format("{}: expected an object", where));
  for (const char* k : {"scenario", "rate", "runs"}) {
    if (!m->contains(k)) return InvalidArgument(fmt::format("{}: missing '{}'", where, k));
  }
  if (!(*m)["scenario"].is_string())
    return InvalidArgument(fmt::format("{}: 'scenario' must be a string", where));
  if (!(*m)["rate"].is_number())
    return InvalidArgument(fmt::format("{}: 'rate' must be a number", where));
  if (!(*m)["runs"].is_array() || (*m)["runs"].empty()) {
    return InvalidArgument(fmt::format("{}: 'runs' must be a non-empty list", where));
  }
  for (const char* k : {"time_scale", "seed"}) {
    if (m->contains(k) && !(*m)[k].is_number()) {
      return InvalidArgument(fmt::format("{}: '{}' must be a number", where, k));
    }
  }
  if (m->contains("seed") &&
      !((*m)["seed"].is_number_unsigned() ||
        ((*m)["seed"].is_number_integer() && (*m)["seed"].get<int64_t>() >= 0))) {
    return InvalidArgument(fmt::format("{}: 'seed' must be a non-negative integer", where));
  }
  const double time_scale = m->value("time_scale", 1.0);
  if (!(time_scale > 0)) {
    return InvalidArgument(
        fmt::format("{}: 'time_scale' {} cannot be compared with simulated time (needs > 0)", where,
                    time_scale));
  }
  const std::string scenario = (*m)["scenario"].get<std::string>();
  const uint64_t seed = m->value("seed", uint64_t{1});
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  for (size_t i = 0; i < (*m)["runs"].size(); ++i) {
    const auto& run = (*m)["runs"][i];
    if (!run.is_object() || !run.contains("stack") || !run["stack"].is_string() ||
        !run.contains("bench_json") || !run["bench_json"].is_string()) {
      return InvalidArgument(
          fmt::format("{}: runs[{}] needs 'stack' and 'bench_json' (strings)", where, i));
    }
    const std::string stack = run["stack"].get<std::string>();
    // Inside the live folder: a manifest from elsewhere must not have other files read (and
    // quoted in errors).
    const fs::path bench_rel(run["bench_json"].get<std::string>());
    bool inside = bench_rel.is_relative() && !bench_rel.empty();
    for (const auto& part : bench_rel) inside = inside && part != "..";
    if (!inside) {
      return InvalidArgument(
          fmt::format("{}: runs[{}].bench_json must name a file inside the live folder, got '{}'",
                      where, i, bench_rel.string()));
    }
    auto bench = ReadJsonFile(dir / bench_rel);
    if (!bench.ok()) return bench.status().WithContext(fmt::format("{}: runs[{}]", where, i));
    if (!bench->is_object() || !bench->contains("mean_ttft_ms")) {
      return InvalidArgument(fmt::format("{}: not a `gimbal bench --json` result (no mean_ttft_ms)",
                                         (dir / run["bench_json"].get<std::string>()).string()));
    }
    nlohmann::ordered_json p;
    p["id"] = fmt::format("live__{}__{}", scenario, stack);
    p["source"] = "live";
    p["scenario"] = scenario;
    p["rate"] = (*m)["rate"];
    p["rate_fraction"] = nullptr;
    p["stack"] = stack;
    p["seed"] = seed;
    p["num_requests"] = bench->value("num_prompts", int64_t{0});
    p["time_scale"] = time_scale;
    p["summary"] = Rescale(*bench, time_scale);
    const std::string csv = RequestsCsv(*bench, time_scale);
    if (!csv.empty() && !requests_dir.empty()) {
      std::error_code ec;
      fs::create_directories(requests_dir, ec);
      const fs::path path =
          fs::absolute(fs::path(requests_dir) / ("live__" + stack + ".requests.csv"));
      GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(path.string(), csv));
      p["requests_path"] = path.string();
    }
    points.push_back(std::move(p));
  }
  return points;
}

const std::vector<std::string>& LiveComparisonMetrics() {
  static const std::vector<std::string> m = {"mean_ttft_ms", "mean_tpot_ms", "p99_ttft_ms",
                                             "request_throughput", "output_throughput"};
  return m;
}

nlohmann::ordered_json LiveComparison(const nlohmann::ordered_json& points) {
  nlohmann::ordered_json out;
  out["metrics"] = LiveComparisonMetrics();
  out["rows"] = nlohmann::ordered_json::array();
  out["unmatched"] = nlohmann::ordered_json::array();
  if (!points.is_array()) return out;
  auto same_rate = [](double a, double b) {
    return std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(b));
  };
  for (const auto& live : points) {
    if (live.value("source", "sim") != "live") continue;
    const std::string scenario = live.value("scenario", ""), stack = live.value("stack", "");
    const double rate = live.value("rate", 0.0);
    const uint64_t seed = live.value("seed", uint64_t{0});
    std::vector<const nlohmann::ordered_json*> all, same_seed;
    for (const auto& p : points) {
      if (p.value("source", "sim") != "sim" || p.value("scenario", "") != scenario ||
          p.value("stack", "") != stack || !same_rate(p.value("rate", 0.0), rate)) {
        continue;
      }
      all.push_back(&p);
      if (p.value("seed", uint64_t{0}) == seed) same_seed.push_back(&p);
    }
    const auto& sims = same_seed.empty() ? all : same_seed;
    if (sims.empty()) {
      out["unmatched"].push_back(stack);
      continue;
    }
    nlohmann::ordered_json row;
    row["scenario"] = scenario;
    row["rate"] = rate;
    row["stack"] = stack;
    row["sim_seeds"] = nlohmann::ordered_json::array();
    // A point without a seed (CheckPoints allows it) is listed as null, not read past.
    for (const auto* p : sims)
      row["sim_seeds"].push_back(p->value("seed", nlohmann::ordered_json()));
    row["live_seed"] = seed;
    nlohmann::ordered_json metrics;
    for (const auto& key : LiveComparisonMetrics()) {
      double sum = 0;
      int n = 0;
      for (const auto* p : sims) {
        const double v = Number((*p)["summary"], key);
        if (std::isnan(v)) continue;
        sum += v;
        n++;
      }
      const double lv = Number(live["summary"], key);
      nlohmann::ordered_json c;
      c["sim"] = n > 0 ? nlohmann::ordered_json(sum / n) : nullptr;
      c["live"] = std::isnan(lv) ? nullptr : nlohmann::ordered_json(lv);
      c["gap_pct"] = n > 0 && sum != 0 && !std::isnan(lv)
                         ? nlohmann::ordered_json((lv - sum / n) / (sum / n) * 100.0)
                         : nullptr;
      metrics[key] = c;
    }
    row["metrics"] = metrics;
    out["rows"].push_back(std::move(row));
  }
  return out;
}

}  // namespace gimbal::experiment
