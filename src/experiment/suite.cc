#include "experiment/suite.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_reader.h"
#include "workload/workload.h"

namespace gimbal::experiment {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> ReadStrings(const YamlReader& r, const std::string& key) {
  std::vector<std::string> out;
  for (const YamlReader& item : r.Items(key, true)) out.push_back(item.Scalar());
  return out;
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

std::string FormatRate(double r) {
  return fmt::format("{:g}", r);
}

// The engine keys a tuned baseline's grid may sweep, their kinds and short names in member names.
enum class EngineKind { kPositiveInt, kNonNegativeInt, kNumber, kBool };
struct EngineKey {
  const char* key;
  EngineKind kind;
  const char* abbreviation;
};
const std::vector<EngineKey>& EngineKeys() {
  static const std::vector<EngineKey> keys = {
      {"max_num_batched_tokens", EngineKind::kPositiveInt, "b"},
      {"prefill_schedule_interval", EngineKind::kPositiveInt, "i"},
      {"max_num_seqs", EngineKind::kPositiveInt, "s"},
      {"block_size", EngineKind::kPositiveInt, "bs"},
      {"kv_capacity_tokens", EngineKind::kNonNegativeInt, "kv"},
      {"gpu_memory_utilization", EngineKind::kNumber, "mem"},
      {"activation_reserve_gb", EngineKind::kNumber, "act"},
      {"enable_prefix_caching", EngineKind::kBool, "pc"},
      {"reserve_full_isl", EngineKind::kBool, "rf"},
      {"async_scheduling", EngineKind::kBool, "as"},
      {"cuda_graph_padding", EngineKind::kBool, "cg"},
      {"cache_aware_admission_window", EngineKind::kNonNegativeInt, "caw"},
      {"cache_aware_admission_threshold", EngineKind::kNumber, "cat"},
  };
  return keys;
}

const EngineKey* FindEngineKey(const std::string& key) {
  for (const EngineKey& k : EngineKeys()) {
    if (key == k.key) return &k;
  }
  return nullptr;
}

// Whether `v` is a value of this kind of engine key, as YAML reads it.
bool ValidEngineValue(EngineKind kind, const YAML::Node& v) {
  if (!v.IsScalar()) return false;
  const std::string& s = v.Scalar();
  switch (kind) {
    case EngineKind::kPositiveInt:
    case EngineKind::kNonNegativeInt: {
      if (s.empty() ||
          !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      if (s.size() > 18) return false;
      const int64_t n = std::stoll(s);
      return kind == EngineKind::kNonNegativeInt || n >= 1;
    }
    case EngineKind::kNumber: {
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      return !s.empty() && *end == '\0' && std::isfinite(d);
    }
    case EngineKind::kBool:
      // The spellings the scenario reader takes (YamlReader::Bool): yaml-cpp's own decoder also
      // takes "True" and "Y", which passed here and failed later in the scenario, at a line of
      // the rewritten document.
      return s == "true" || s == "yes" || s == "on" || s == "false" || s == "no" || s == "off";
  }
  return false;
}

const char* KindText(EngineKind kind) {
  switch (kind) {
    case EngineKind::kPositiveInt:
      return "an integer >= 1";
    case EngineKind::kNonNegativeInt:
      return "an integer >= 0";
    case EngineKind::kNumber:
      return "a number";
    case EngineKind::kBool:
      return "true or false";
  }
  return "?";
}

// One `tuned_baseline` entry; errors go to `r`'s error slot.
TunedBaseline ReadTunedBaseline(const YamlReader& r) {
  TunedBaseline tb;
  if (!r.IsMap()) {
    r.Fail("expected a map with 'name', 'stack' and 'grid'");
    return tb;
  }
  r.CheckKeys({"name", "stack", "grid"});
  tb.name = r.String("name", std::nullopt);
  tb.stack = r.String("stack", std::nullopt);
  if (!r.ok()) return tb;
  if (tb.name.empty() || tb.name.find('/') != std::string::npos) {
    r.Fail(fmt::format("expected a name without '/', got '{}'", tb.name), "name");
  }
  const YamlReader grid = r.Child("grid");
  if (!r.ok()) return tb;
  if (!grid.IsMap() || grid.size() == 0) {
    grid.Fail(
        "expected a non-empty map of engine keys to lists of values, e.g. {max_num_seqs: [256, "
        "1024]}");
    return tb;
  }
  size_t points = 1;
  for (const std::string& key : grid.Keys()) {
    const EngineKey* ek = FindEngineKey(key);
    if (ek == nullptr) {
      std::string known;
      for (const EngineKey& k : EngineKeys())
        known += (known.empty() ? "" : ", ") + std::string(k.key);
      grid.Fail(fmt::format("unknown engine key '{}' (expected one of {})", key, known), key);
      return tb;
    }
    TunedAxis axis{key, {}};
    const YamlReader values = grid.Child(key);
    if (!values.IsSequence() || values.size() == 0) {
      grid.Fail("expected a non-empty list of values", key);
      return tb;
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const YamlReader v = values.At(i);
      if (!ValidEngineValue(ek->kind, v.node())) {
        v.Fail(fmt::format("expected {}, got '{}'", KindText(ek->kind),
                           v.node().IsScalar() ? v.node().Scalar() : std::string("a list or map")));
        return tb;
      }
      if (std::find(axis.values.begin(), axis.values.end(), v.Scalar()) != axis.values.end()) {
        v.Fail(fmt::format("value '{}' is listed twice", v.Scalar()));
        return tb;
      }
      axis.values.push_back(v.Scalar());
    }
    points *= axis.values.size();
    if (points > kMaxTunedPoints) {
      grid.Fail(fmt::format("the grid has more than {} points (the product of the lists' lengths)",
                            kMaxTunedPoints));
      return tb;
    }
    tb.grid.push_back(std::move(axis));
  }
  return tb;
}

// The copy of `base` (a stack definition) that is the member for `setting`.
YAML::Node TunedMember(const YAML::Node& base, const std::string& name,
                       const TunedSetting& setting) {
  YAML::Node m = YAML::Clone(base);
  m["name"] = name;
  const YAML::Node own = base["engine"];
  YAML::Node engine = own && own.IsMap() ? YAML::Clone(own) : YAML::Node(YAML::NodeType::Map);
  for (const auto& [key, value] : setting) engine[key] = YAML::Load(value);
  m["engine"] = engine;
  return m;
}

}  // namespace

std::vector<TunedSetting> TunedSettings(const TunedBaseline& tb) {
  std::vector<TunedSetting> out;
  if (tb.grid.empty()) return out;
  out.emplace_back();
  for (const TunedAxis& axis : tb.grid) {
    std::vector<TunedSetting> next;
    for (const TunedSetting& partial : out) {
      for (const std::string& v : axis.values) {
        TunedSetting s = partial;
        s.emplace_back(axis.key, v);
        next.push_back(std::move(s));
      }
    }
    out = std::move(next);
  }
  return out;
}

std::string TunedMemberName(const std::string& group, const TunedSetting& setting) {
  std::string out = group + "/";
  for (size_t i = 0; i < setting.size(); ++i) {
    const EngineKey* ek = FindEngineKey(setting[i].first);
    if (i > 0) out += "-";
    out += (ek != nullptr ? std::string(ek->abbreviation) : setting[i].first) + setting[i].second;
  }
  return out;
}

std::string SafeName(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || ch == '.' || ch == '-' || ch == '_') {
      out += static_cast<char>(std::tolower(c));
    } else {
      out += '-';
    }
  }
  return out.empty() ? "-" : out;
}

Result<Suite> ParseSuite(const std::string& text, const std::string& name,
                         const std::string& base_dir, int seeds_override) {
  auto doc = YamlReader::FromString(text, name);
  if (!doc.ok()) return doc.status();
  const YamlReader& root = *doc;
  if (!root.IsMap())
    return InvalidArgument(fmt::format("{}: expected a map at the top level", name));
  root.CheckKeys({"name", "description", "scenarios", "rates", "rate_unit", "duration_s",
                  "min_requests", "max_requests", "seeds", "set", "stacks", "baseline", "headline",
                  "tuned_baseline", "series_bins", "expert_load"});
  Suite s;
  s.file = name;
  s.name = root.String("name", fs::path(name).stem().string());
  s.description = root.String("description", "");
  s.rates = root.Doubles("rates", true);
  s.rate_unit = root.Enum("rate_unit", "rps", {"rps", "saturation"});
  s.duration_s = root.Double("duration_s", 0, 0, kMaxWorkloadSpanS);
  s.min_requests = root.Int("min_requests", 1, 1);
  s.max_requests = root.Int("max_requests", 0, 0);
  s.overrides = ReadStrings(root, "set");
  s.baseline = root.String("baseline", "");
  s.headline = root.String("headline", "");
  s.series_bins = static_cast<int>(root.Int("series_bins", 200, 1, 100000));
  for (double r : s.rates) {
    if (!(r > 0) || !(r <= kMaxRate)) {
      root.Fail(fmt::format("rates must be positive and at most {}", kMaxRate), "rates");
    }
  }
  if (root.Has("seeds")) {
    const YamlReader seeds = root.Child("seeds");
    if (seeds.node().IsScalar()) {
      const int64_t k = root.Int("seeds", std::nullopt, 1, 10000);
      s.seeds.clear();
      for (int64_t i = 1; i <= k; ++i) s.seeds.push_back(static_cast<uint64_t>(i));
    } else {
      s.seeds.clear();
      std::set<uint64_t> seen;
      // Read as integers, not doubles: 2^53 + 1 would become 2^53, and 1e300 wrap in its cast.
      // A scenario's seed is at most INT64_MAX, and a suite's seeds become scenarios' seeds.
      if (!seeds.node().IsSequence()) {
        root.Fail("seeds must be a count or a list of integers", "seeds");
      }
      for (const YAML::Node& item : seeds.node()) {
        if (!seeds.node().IsSequence()) break;
        const std::string item_text = item.IsScalar() ? item.Scalar() : std::string();
        int64_t seed = -1;
        const auto [end, ec] =
            std::from_chars(item_text.data(), item_text.data() + item_text.size(), seed);
        if (item_text.empty() || ec != std::errc() || end != item_text.data() + item_text.size() ||
            seed < 0) {
          root.Fail(fmt::format("seeds must be integers in [0, {}], got '{}'",
                                std::numeric_limits<int64_t>::max(), item_text),
                    "seeds");
          break;
        }
        if (!seen.insert(static_cast<uint64_t>(seed)).second) {
          root.Fail(fmt::format("seed {} is listed twice", seed), "seeds");
        }
        s.seeds.push_back(static_cast<uint64_t>(seed));
      }
      if (root.ok() && s.seeds.empty()) root.Fail("at least one seed is needed", "seeds");
    }
  }
  if (seeds_override > 0) {
    s.seeds.clear();
    for (int i = 1; i <= seeds_override; ++i) s.seeds.push_back(static_cast<uint64_t>(i));
  }
  if (root.Has("expert_load")) {
    const YamlReader el = root.Child("expert_load");
    el.CheckKeys({"enabled", "bins"});
    s.expert_load = el.Bool("enabled", true);
    s.expert_load_bins = static_cast<int>(el.Int("bins", 60, 1, 10000));
  }
  for (const YamlReader& sc : root.Items("scenarios")) {
    sc.CheckKeys({"path", "label", "saturation_rate", "optional", "set", "rates", "rate_unit"});
    SuiteScenario e;
    e.path = Resolve(base_dir, sc.String("path", std::nullopt));
    e.label = sc.String("label", "");
    e.saturation_rate = sc.Double("saturation_rate", 0, 0, kMaxRate);
    e.optional = sc.Bool("optional", false);
    e.overrides = ReadStrings(sc, "set");
    if (sc.Has("rates")) e.rates = sc.Doubles("rates");
    if (sc.Has("rate_unit")) e.rate_unit = sc.Enum("rate_unit", "rps", {"rps", "saturation"});
    const std::string unit = e.rate_unit.value_or(s.rate_unit);
    const auto& rates = e.rates ? *e.rates : s.rates;
    if (sc.ok() && unit == "saturation" && !rates.empty() && !(e.saturation_rate > 0)) {
      sc.Fail(
          "rates are fractions of the saturation rate, so 'saturation_rate' (requests/s) is needed",
          "saturation_rate");
    }
    s.scenarios.push_back(std::move(e));
  }
  if (root.ok() && s.scenarios.empty()) root.Fail("at least one scenario is needed", "scenarios");
  std::set<std::string> stack_names;
  for (const YamlReader& st : root.Items("stacks", true)) {
    SuiteStack e;
    if (st.node().IsScalar()) {
      e.name = st.Scalar();
    } else if (st.IsMap()) {
      e.name = st.String("name", std::nullopt);
      e.optional = st.Bool("optional", false);
      e.definition = YAML::Clone(st.node());
      e.definition.remove("optional");
    } else {
      st.Fail("expected a stack name or a stack definition (a map with 'name')");
    }
    if (root.ok() && !stack_names.insert(e.name).second) {
      st.Fail(fmt::format("stack '{}' is listed twice", e.name));
    }
    if (root.ok() && e.name.find('/') != std::string::npos) {
      st.Fail(fmt::format("stack name '{}' has a '/' (kept for tuned_baseline members)", e.name));
    }
    s.stacks.push_back(std::move(e));
  }
  if (root.ok() && root.Has("tuned_baseline")) {
    const YamlReader tr = root.Child("tuned_baseline");
    std::vector<YamlReader> entries;
    if (tr.IsSequence()) {
      for (size_t i = 0; i < tr.size(); ++i) entries.push_back(tr.At(i));
      if (tr.size() == 0)
        tr.Fail("expected a map with 'name', 'stack' and 'grid', or a list of them");
    } else {
      entries.push_back(tr);
    }
    std::set<std::string> groups;
    for (const YamlReader& e : entries) {
      if (!root.ok()) break;
      TunedBaseline tb = ReadTunedBaseline(e);
      if (!root.ok()) break;
      if (stack_names.count(tb.name) || !groups.insert(tb.name).second) {
        e.Fail(
            fmt::format("'{}' is already the name of a stack or another tuned baseline", tb.name),
            "name");
      } else if (!s.stacks.empty() && !stack_names.count(tb.stack)) {
        e.Fail(fmt::format("'{}' is not among the suite's stacks", tb.stack), "stack");
      }
      s.tuned.push_back(std::move(tb));
    }
  }
  if (!root.ok()) return root.status();
  return s;
}

Result<Suite> LoadSuite(const std::string& path, int seeds_override) {
  // A regular file (or pipe) of bounded size: not a directory, not /dev/zero.
  Result<std::string> text = ReadConfigFile(path, "suite file");
  if (!text.ok()) return text.status();
  const std::string dir = fs::path(path).parent_path().string();
  return ParseSuite(*text, path, dir.empty() ? "." : dir, seeds_override);
}

namespace {

struct ScenarioDoc {
  YAML::Node root;
  std::string dir;
};

Result<ScenarioDoc> ReadScenarioDoc(const std::string& path) {
  ScenarioDoc d;
  Result<std::string> text = ReadConfigFile(path, "scenario file");
  if (!text.ok()) return text.status();
  // Read as every config file is (YamlReader): malformed text, a second document and duplicate
  // keys are errors that name the line.
  Result<YamlReader> reader = YamlReader::FromString(*text, path);
  if (!reader.ok()) return reader.status();
  d.root = reader->node();
  if (!d.root.IsMap())
    return InvalidArgument(fmt::format("{}: expected a map at the top level", path));
  const std::string dir = fs::path(path).parent_path().string();
  d.dir = dir.empty() ? "." : dir;
  return d;
}

// The scenario document with `stacks` replaced and the workload set to `rate` (0: unchanged).
Result<std::string> Rewrite(const ScenarioDoc& doc, const std::string& path,
                            const YAML::Node& stacks, double rate, int64_t num_requests) {
  YAML::Node root = YAML::Clone(doc.root);
  root["stacks"] = stacks;
  if (rate > 0) {
    YAML::Node wl = root["workload"];
    if (!wl.IsMap()) return InvalidArgument(fmt::format("{}: 'workload' is missing", path));
    const std::string kind = wl["kind"] ? wl["kind"].as<std::string>() : "synthetic";
    if (kind != "synthetic") {
      return InvalidArgument(
          fmt::format("{}: a suite's rates need a synthetic workload, not '{}' (omit 'rates' to "
                      "replay the trace, "
                      "or scale it with set: [workload.time_scale=...])",
                      path, kind));
    }
    wl.remove("schedule");
    wl["rate"] = rate;
    if (num_requests > 0) wl["num_requests"] = num_requests;
  }
  YAML::Emitter em;
  em << root;
  if (!em.good())
    return Internal(fmt::format("{}: cannot re-serialise: {}", path, em.GetLastError()));
  return std::string(em.c_str());
}

}  // namespace

Result<SuitePlan> PlanSuite(const Suite& suite) {
  SuitePlan plan;
  const std::string where = suite.file;
  // Stack names in suite order; filled from the first scenario when the suite lists none.
  std::set<std::string> ids;
  std::map<std::string, int> found_refs;   // stack referenced by name -> scenarios that have it
  std::map<std::string, int> tuned_found;  // tuned baseline -> scenarios that have its stack
  int loaded_scenarios = 0;                // with points
  int attempted_scenarios = 0;             // found and read
  for (const SuiteScenario& e : suite.scenarios) {
    if (!fs::exists(e.path)) {
      if (e.optional) {
        plan.notes.push_back(fmt::format("skipped scenario {}: file not found", e.path));
        continue;
      }
      return NotFound(fmt::format("{}: scenario file {} not found", where, e.path));
    }
    auto doc = ReadScenarioDoc(e.path);
    if (!doc.ok()) return doc.status();
    std::vector<std::string> overrides = suite.overrides;
    overrides.insert(overrides.end(), e.overrides.begin(), e.overrides.end());
    const std::string name = fmt::format("{} (from suite {})", e.path, where);

    // Select the stacks.
    YAML::Node stacks(YAML::NodeType::Sequence);
    const YAML::Node own = doc->root["stacks"];
    if (suite.stacks.empty()) {
      if (own && own.IsSequence()) stacks = YAML::Clone(own);
    }
    for (const SuiteStack& st : suite.stacks) {
      if (!st.definition.IsMap()) {
        bool have = false;
        if (own && own.IsSequence()) {
          for (const auto& n : own) {
            if (n.IsMap() && n["name"] && n["name"].as<std::string>() == st.name) {
              stacks.push_back(YAML::Clone(n));
              have = true;
              break;
            }
          }
        }
        if (have) {
          found_refs[st.name]++;
        } else {
          found_refs.emplace(st.name, 0);
          plan.notes.push_back(fmt::format(
              "skipped stack '{}' on {}: the scenario defines no such stack", st.name, e.path));
        }
        continue;
      }
      if (st.optional) {
        // Validate it alone: a definition the loader does not accept (yet) is skipped.
        YAML::Node one(YAML::NodeType::Sequence);
        one.push_back(YAML::Clone(st.definition));
        auto text = Rewrite(*doc, e.path, one, 0, 0);
        if (!text.ok()) return text.status();
        auto trial = ParseScenario(*text, name, doc->dir, overrides);
        if (!trial.ok()) {
          plan.notes.push_back(fmt::format("skipped optional stack '{}' on {}: {}", st.name, e.path,
                                           trial.status().message()));
          continue;
        }
      }
      stacks.push_back(YAML::Clone(st.definition));
    }
    for (const auto& n : stacks) {
      const std::string sn = n.IsMap() && n["name"] ? n["name"].as<std::string>() : "";
      if (sn.find('/') != std::string::npos) {
        return InvalidArgument(fmt::format(
            "{}: stack name '{}' in {} has a '/', which names tuned_baseline members (rename it)",
            where, sn, e.path));
      }
    }
    // Each tuned baseline: its stack once per grid point, after the suite's stacks.
    const size_t own_stacks = stacks.size();
    for (const TunedBaseline& tb : suite.tuned) {
      size_t at = own_stacks;
      for (size_t k = 0; k < own_stacks && at == own_stacks; ++k) {
        const YAML::Node n = stacks[k];
        if (n.IsMap() && n["name"] && n["name"].as<std::string>() == tb.stack) at = k;
      }
      if (at == own_stacks) {
        tuned_found.emplace(tb.name, 0);
        plan.notes.push_back(fmt::format("skipped tuned baseline '{}' on {}: no stack '{}' to tune",
                                         tb.name, e.path, tb.stack));
        continue;
      }
      const YAML::Node base = YAML::Clone(stacks[at]);  // the list grows below
      if (base["engine"] && !base["engine"].IsMap()) {
        return InvalidArgument(
            fmt::format("{}: tuned baseline '{}': stack '{}' in {} has an "
                        "'engine' that is not a map",
                        where, tb.name, tb.stack, e.path));
      }
      tuned_found[tb.name]++;
      for (const TunedSetting& setting : TunedSettings(tb)) {
        stacks.push_back(TunedMember(base, TunedMemberName(tb.name, setting), setting));
      }
    }
    if (stacks.size() == 0) {
      plan.notes.push_back(fmt::format("skipped scenario {}: no stack to run", e.path));
      attempted_scenarios++;
      continue;
    }

    const auto& rates_in = e.rates ? *e.rates : suite.rates;
    const std::string unit = e.rate_unit.value_or(suite.rate_unit);
    std::vector<std::pair<double, std::optional<double>>> rates;  // absolute, fraction
    for (double r : rates_in) {
      if (unit == "saturation") {
        rates.emplace_back(r * e.saturation_rate, r);
      } else {
        rates.emplace_back(r, std::nullopt);
      }
    }
    if (rates.empty()) rates.emplace_back(0.0, std::nullopt);
    double top = 0;
    for (const auto& [r, f] : rates) top = std::max(top, r);

    for (const auto& [rate, fraction] : rates) {
      int64_t n = 0;
      if (rate > 0 && suite.duration_s > 0) {
        // Held to the workload's bound before rounding (a year at 1e9 requests/s has no
        // int64); the scenario then refuses what is still too many, naming num_requests.
        const double want = std::min(rate * suite.duration_s, 2.0 * kMaxWorkloadRequests);
        n = std::max<int64_t>(suite.min_requests, std::llround(want));
        if (suite.max_requests > 0) n = std::min(n, suite.max_requests);
      }
      auto text = Rewrite(*doc, e.path, stacks, rate, n);
      if (!text.ok()) return text.status();
      auto sc = ParseScenario(*text, name, doc->dir, overrides);
      if (!sc.ok()) return sc.status();
      const std::string label = e.label.empty() ? sc->name : e.label;
      for (size_t k = 0; k < sc->stacks.size(); ++k) {
        // Tuned-baseline members run at the top rate only: the headline compares there, and a
        // 30-point grid at every rate would triple a suite's points.
        if (rate != top && sc->stacks[k].name.find('/') != std::string::npos) continue;
        if (plan.points.size() + suite.seeds.size() > kMaxSuitePoints) {
          return InvalidArgument(fmt::format(
              "{}: the suite has more than {} points (scenarios x rates x stacks x seeds); split "
              "it into several suites",
              where, kMaxSuitePoints));
        }
        for (size_t si = 0; si < suite.seeds.size(); ++si) {
          const uint64_t seed = suite.seeds[si];
          auto spec = std::make_shared<Scenario>(*sc);
          spec->seed = seed;
          spec->options.seed = seed;
          Point p;
          p.scenario = label;
          p.scenario_file = e.path;
          p.rate = rate;
          p.rate_fraction = fraction;
          p.stack = sc->stacks[k].name;
          p.stack_index = k;
          p.seed = seed;
          p.top_rate = rate == top;
          p.first_seed = si == 0;
          p.id = fmt::format("{}__r{}__{}__s{}", SafeName(label), rate > 0 ? FormatRate(rate) : "0",
                             SafeName(p.stack), seed);
          if (!ids.insert(p.id).second) {
            return InvalidArgument(fmt::format(
                "{}: two points would both be named '{}' (give the scenarios distinct labels)",
                where, p.id));
          }
          p.spec = std::move(spec);
          plan.points.push_back(std::move(p));
        }
      }
      for (const auto& st : sc->stacks) {
        if (std::find(plan.stacks.begin(), plan.stacks.end(), st.name) == plan.stacks.end()) {
          plan.stacks.push_back(st.name);
        }
      }
    }
    loaded_scenarios++;
    attempted_scenarios++;
  }
  for (const auto& [stack, count] : found_refs) {
    if (count == 0 && attempted_scenarios > 0) {
      return InvalidArgument(fmt::format(
          "{}: no scenario defines stack '{}' (check the name, or define it in the suite)", where,
          stack));
    }
  }
  for (const TunedBaseline& tb : suite.tuned) {
    if (tuned_found[tb.name] == 0 && attempted_scenarios > 0) {
      return InvalidArgument(fmt::format(
          "{}: 'tuned_baseline' '{}': no scenario runs stack '{}' (check 'tuned_baseline.stack')",
          where, tb.name, tb.stack));
    }
    if (std::find(plan.stacks.begin(), plan.stacks.end(), tb.name) != plan.stacks.end()) {
      return InvalidArgument(fmt::format(
          "{}: 'tuned_baseline' '{}' has the name of a stack the scenarios run (rename it)", where,
          tb.name));
    }
    TunedGroup g{tb.name, tb.stack, {}, TunedSettings(tb)};
    for (const TunedSetting& setting : g.settings)
      g.members.push_back(TunedMemberName(tb.name, setting));
    plan.tuned.push_back(std::move(g));
  }
  if (plan.points.empty()) {
    return InvalidArgument(fmt::format("{}: nothing to run ({})", where,
                                       plan.notes.empty() ? "no points" : plan.notes.back()));
  }
  plan.baseline = suite.baseline.empty() ? plan.stacks.front() : suite.baseline;
  if (!suite.headline.empty()) {
    plan.headline = suite.headline;
  } else if (std::find(plan.stacks.begin(), plan.stacks.end(), "gimbal") != plan.stacks.end()) {
    plan.headline = "gimbal";
  } else {
    for (const std::string& st : plan.stacks) {
      if (st.find('/') == std::string::npos) plan.headline = st;  // the last stack not a member
    }
  }
  for (const std::string* s : {&plan.baseline, &plan.headline}) {
    if (std::find(plan.stacks.begin(), plan.stacks.end(), *s) == plan.stacks.end()) {
      return InvalidArgument(
          fmt::format("{}: baseline/headline stack '{}' is not among the stacks run", where, *s));
    }
    if (s->find('/') != std::string::npos) {
      return InvalidArgument(fmt::format(
          "{}: baseline/headline stack '{}' is a tuned_baseline member; name a stack", where, *s));
    }
  }
  return plan;
}

}  // namespace gimbal::experiment
