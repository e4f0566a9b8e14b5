// ParseWorkloadSpec: the `workload:` map of a scenario (schema in docs/workloads.md).
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "workload/workload.h"

namespace gimbal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<std::string> kSyntheticKeys = {"num_requests", "rate",   "burstiness", "schedule",
                                                 "prompt",       "output", "sessions"};
const std::vector<std::string> kTraceKeys = {"path", "time_scale", "max_requests", "start_offset"};
// Keys of kinds multiturn and agentic, besides rate, burstiness, schedule and output.
const std::vector<std::string> kSessionKeys = {"num_sessions", "turns",      "think_time",
                                               "first_prompt", "message",    "system_prompts",
                                               "est_ttft_s",   "est_tpot_s", "max_prompt"};

// A rate: a number in [kMinRate, kMaxRate] or inf (`inf`, `.inf`, `infinity`, any case).
double ReadRate(const YamlReader& r, const std::string& key, std::optional<double> def,
                const char* unit = "requests") {
  if (!r.Has(key)) return r.Double(key, def);  // reports a missing required key
  const YAML::Node n = r.node()[key];
  const std::string s = n.IsScalar() ? n.Scalar() : std::string();
  std::string lower;
  for (char c : s) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "inf" || lower == ".inf" || lower == "+inf" || lower == "+.inf" ||
      lower == "infinity") {
    return kInf;
  }
  char* end = nullptr;
  const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v) || !(v >= kMinRate) || !(v <= kMaxRate)) {
    r.Fail(fmt::format("expected inf or a number of {} per second in [{}, {}], got '{}'", unit,
                       kMinRate, kMaxRate, n.IsScalar() ? s : std::string("a non-scalar")),
           key);
    return def.value_or(1);
  }
  return v;
}

// A number > 0 (Double checks >= lo only).
double Positive(const YamlReader& r, const std::string& key, std::optional<double> def) {
  const double v = r.Double(key, def, 0);
  if (r.ok() && r.Has(key) && !(v > 0)) {
    r.Fail(fmt::format("expected a number > 0, got '{}'", r.node()[key].Scalar()), key);
  }
  return v;
}

LengthDist ReadLength(const YamlReader& parent, const std::string& key, const LengthDist& def) {
  LengthDist d = def;
  if (!parent.Has(key)) return d;
  const YamlReader c = parent.Child(key);
  if (c.node().IsScalar()) {  // `prompt: 512` is a fixed length
    d = LengthDist{};
    d.kind = LengthDist::Kind::kFixed;
    d.mean = parent.Double(key, std::nullopt, 1);
    return d;
  }
  if (!c.IsMap()) {
    c.Fail("expected a token count or a map with 'dist'");
    return d;
  }
  d = LengthDist{};
  const std::string dist =
      c.Enum("dist", "fixed", {"fixed", "uniform", "normal", "lognormal", "pareto"});
  if (!c.ok()) return d;
  if (dist == "fixed") {
    c.CheckKeys({"dist", "mean", "min", "max"});
    d.kind = LengthDist::Kind::kFixed;
    d.mean = c.Double("mean", std::nullopt, 1);
  } else if (dist == "uniform") {
    c.CheckKeys({"dist", "low", "high", "min", "max"});
    d.kind = LengthDist::Kind::kUniform;
    d.low = c.Double("low", std::nullopt, 0);
    d.high = c.Double("high", std::nullopt, 0, 0x1.0p62);
    if (c.ok() && d.low > d.high) {
      c.Fail(fmt::format("low {} is greater than high {}", d.low, d.high), "low");
    }
  } else if (dist == "normal") {
    c.CheckKeys({"dist", "mean", "stddev", "min", "max"});
    d.kind = LengthDist::Kind::kNormal;
    d.mean = Positive(c, "mean", std::nullopt);
    d.stddev = c.Double("stddev", std::nullopt, 0);
  } else if (dist == "lognormal") {
    c.CheckKeys({"dist", "mean", "sigma", "min", "max"});
    d.kind = LengthDist::Kind::kLogNormal;
    d.mean = Positive(c, "mean", std::nullopt);
    d.sigma = c.Double("sigma", 1.0, 0, 10);
  } else {
    c.CheckKeys({"dist", "mean", "alpha", "min", "max"});
    d.kind = LengthDist::Kind::kPareto;
    d.mean = Positive(c, "mean", std::nullopt);
    d.alpha = c.Double("alpha", 2.0, 0);
    if (c.ok() && !(d.alpha > 1)) {
      c.Fail(fmt::format("expected a number > 1 (a finite mean), got '{}'", d.alpha), "alpha");
    }
  }
  d.min = c.Int("min", 1, 1, kMaxRequestTokens);
  d.max = c.Int("max", LengthDist{}.max, 1, kMaxRequestTokens);
  if (c.ok() && d.min > d.max) {
    c.Fail(fmt::format("min {} is greater than max {}", d.min, d.max), "min");
  }
  return d;
}

// A duration distribution in seconds: a bare number is fixed.
SecondsDist ReadSeconds(const YamlReader& parent, const std::string& key, const SecondsDist& def) {
  SecondsDist d = def;
  if (!parent.Has(key)) return d;
  const YamlReader c = parent.Child(key);
  if (c.node().IsScalar()) {
    d = SecondsDist{};
    d.mean = parent.Double(key, std::nullopt, 0, kMaxWorkloadSpanS);
    d.max = std::max(d.max, d.mean);
    return d;
  }
  if (!c.IsMap()) {
    c.Fail("expected a number of seconds or a map with 'dist'");
    return d;
  }
  d = SecondsDist{};
  const std::string dist =
      c.Enum("dist", "fixed", {"fixed", "uniform", "exponential", "lognormal"});
  if (!c.ok()) return d;
  if (dist == "fixed") {
    c.CheckKeys({"dist", "mean", "max"});
    d.mean = c.Double("mean", std::nullopt, 0, kMaxWorkloadSpanS);
    d.max = std::max(d.max, d.mean);
  } else if (dist == "uniform") {
    c.CheckKeys({"dist", "low", "high", "max"});
    d.kind = SecondsDist::Kind::kUniform;
    d.low = c.Double("low", std::nullopt, 0, kMaxWorkloadSpanS);
    d.high = c.Double("high", std::nullopt, 0, kMaxWorkloadSpanS);
    if (c.ok() && d.low > d.high) {
      c.Fail(fmt::format("low {} is greater than high {}", d.low, d.high), "low");
    }
    d.max = std::max(d.max, d.high);
  } else {
    c.CheckKeys(dist == "exponential" ? std::vector<std::string>{"dist", "mean", "max"}
                                      : std::vector<std::string>{"dist", "mean", "sigma", "max"});
    d.kind =
        dist == "exponential" ? SecondsDist::Kind::kExponential : SecondsDist::Kind::kLogNormal;
    d.mean = Positive(c, "mean", std::nullopt);
    if (c.ok() && !(d.mean <= kMaxWorkloadSpanS)) {
      c.Fail(fmt::format("expected at most {} seconds, got {}", kMaxWorkloadSpanS, d.mean), "mean");
    }
    if (dist == "lognormal") d.sigma = c.Double("sigma", 1.0, 0, 10);
  }
  d.max = c.Double("max", d.max, 0, kMaxWorkloadSpanS);
  return d;
}

// rate (or schedule) and burstiness; `unit` names what arrives.
void ReadArrivals(const YamlReader& node, WorkloadSpec& s, const char* unit) {
  if (node.Has("rate") && node.Has("schedule")) {
    node.Fail("give either rate or schedule, not both", "schedule");
  }
  s.rate = ReadRate(node, "rate", s.rate, unit);
  s.burstiness = node.Double("burstiness", s.burstiness, kMinBurstiness, kMaxBurstiness);
  for (const YamlReader& item : node.Items("schedule", /*optional=*/true)) {
    if (!item.IsMap()) {
      item.Fail(fmt::format("expected a map {{start: seconds, rate: {} per second}}", unit));
      break;
    }
    item.CheckKeys({"start", "rate"});
    RatePhase p;
    p.start = item.Double("start", std::nullopt, 0, kMaxWorkloadSpanS);
    p.rate = ReadRate(item, "rate", std::nullopt, unit);
    if (!node.ok()) break;
    if (s.schedule.empty() && p.start != 0) {
      item.Fail(fmt::format("the first phase must start at 0, got {}", p.start), "start");
    } else if (!s.schedule.empty() && !(p.start > s.schedule.back().start)) {
      item.Fail(fmt::format("phases must be sorted by strictly increasing start, got {} after {}",
                            p.start, s.schedule.back().start),
                "start");
    }
    s.schedule.push_back(p);
  }
}

void ReadSessions(const YamlReader& node, WorkloadSpec& s) {
  SessionSpec& d = s.session;
  d.num_sessions = node.Int("num_sessions", d.num_sessions, 1, kMaxWorkloadRequests);
  ReadArrivals(node, s, "sessions");
  d.turns = ReadLength(node, "turns", d.turns);
  d.think_time = ReadSeconds(node, "think_time", d.think_time);
  d.first_prompt = ReadLength(node, "first_prompt", d.first_prompt);
  d.message = ReadLength(node, "message", d.message);
  s.output = ReadLength(node, "output", s.output);
  if (node.Has("system_prompts")) {
    const YamlReader c = node.Child("system_prompts");
    if (!c.IsMap()) {
      c.Fail("expected a map {count, tokens, zipf}");
    } else {
      c.CheckKeys({"count", "tokens", "zipf"});
      d.system_prompts.count = c.Int("count", d.system_prompts.count, 0, kMaxSystemPrompts);
      d.system_prompts.tokens = ReadLength(c, "tokens", d.system_prompts.tokens);
      d.system_prompts.zipf = c.Double("zipf", d.system_prompts.zipf, 0, 10);
    }
  }
  d.est_ttft_s = node.Double("est_ttft_s", d.est_ttft_s, 0, 3600);
  d.est_tpot_s = node.Double("est_tpot_s", d.est_tpot_s, 0, 3600);
  d.max_prompt = node.Int("max_prompt", d.max_prompt, 1, kMaxRequestTokens);
}

}  // namespace

Result<WorkloadSpec> ParseWorkloadSpec(const YamlReader& node, const std::string& base_dir) {
  WorkloadSpec s;
  if (!node.IsMap()) {
    node.Fail("expected a map (kind, rate, ... or kind, path, ...)");
    return node.status();
  }
  std::vector<std::string> known = {"kind", "max_tokens", "prefix_hash_tokens"};
  known.insert(known.end(), kSyntheticKeys.begin(), kSyntheticKeys.end());
  known.insert(known.end(), kTraceKeys.begin(), kTraceKeys.end());
  known.insert(known.end(), kSessionKeys.begin(), kSessionKeys.end());
  node.CheckKeys(known);
  const std::string kind = node.Enum(
      "kind", "synthetic", {"synthetic", "azure", "mooncake", "burstgpt", "multiturn", "agentic"});
  if (!node.ok()) return node.status();
  const bool sessions = kind == "multiturn" || kind == "agentic";
  if (!sessions) {
    for (const auto& k : kSessionKeys) {
      if (node.Has(k))
        node.Fail(fmt::format("applies only to kinds multiturn and agentic, not {}", kind), k);
    }
  }
  if (node.Has("prefix_hash_tokens") && kind != "mooncake" && !sessions) {
    node.Fail(fmt::format("applies only to kinds mooncake, multiturn and agentic, not {}", kind),
              "prefix_hash_tokens");
  }
  if (!node.ok()) return node.status();

  if (sessions) {
    for (const auto& k : kTraceKeys) {
      if (node.Has(k))
        node.Fail("applies only to trace workloads (kind azure, mooncake or burstgpt)", k);
    }
    for (const char* k : {"num_requests", "prompt", "sessions"}) {
      if (node.Has(k)) {
        node.Fail(fmt::format("applies only to kind synthetic, not {} (see num_sessions, "
                              "first_prompt and message)",
                              kind),
                  k);
      }
    }
    if (!node.ok()) return node.status();
    s = DefaultWorkloadSpec(kind == "multiturn" ? WorkloadSpec::Kind::kMultiTurn
                                                : WorkloadSpec::Kind::kAgentic);
    ReadSessions(node, s);
  } else if (kind == "synthetic") {
    for (const auto& k : kTraceKeys) {
      if (node.Has(k))
        node.Fail("applies only to trace workloads (kind azure, mooncake or burstgpt)", k);
    }
    s.kind = WorkloadSpec::Kind::kSynthetic;
    s.num_requests = node.Int("num_requests", s.num_requests, 1, kMaxWorkloadRequests);
    ReadArrivals(node, s, "requests");
    s.prompt = ReadLength(node, "prompt", s.prompt);
    s.output = ReadLength(node, "output", s.output);
    s.sessions = node.Int("sessions", 0, 0);
    const double span = ExpectedSyntheticSpan(s);
    if (node.ok() && !(span <= kMaxWorkloadSpanS)) {
      node.Fail(fmt::format("{} requests at this rate arrive over about {:.3g} s, more than the "
                            "{:.3g} s (366 days) a workload may span; raise the rate or lower "
                            "num_requests",
                            s.num_requests, span, kMaxWorkloadSpanS),
                "num_requests");
    }
  } else {
    for (const auto& k : kSyntheticKeys) {
      if (node.Has(k)) {
        node.Fail(fmt::format("applies only to kind synthetic{}, not {}",
                              k == "rate" || k == "burstiness" || k == "schedule" || k == "output"
                                  ? " and the session kinds (multiturn, agentic)"
                                  : "",
                              kind),
                  k);
      }
    }
    s.kind = kind == "azure"      ? WorkloadSpec::Kind::kAzure
             : kind == "mooncake" ? WorkloadSpec::Kind::kMooncake
                                  : WorkloadSpec::Kind::kBurstGpt;
    const std::string path = node.String("path", std::nullopt);
    if (node.ok() && path.empty()) node.Fail("expected a file path, got ''", "path");
    std::filesystem::path p(path);
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    s.path = p.lexically_normal().string();
    s.time_scale = node.Double("time_scale", 1.0, kMinTimeScale, kMaxTimeScale);
    s.max_requests = node.Int("max_requests", 0, 0, kMaxWorkloadRequests);
    s.start_offset = node.Double("start_offset", 0.0, 0);
  }
  if (node.Has("prefix_hash_tokens")) {
    s.prefix_hash_tokens = node.Int("prefix_hash_tokens", std::nullopt, 1, kMaxPrefixHashTokens);
  }
  if (node.Has("max_tokens")) {
    s.max_tokens = node.Int("max_tokens", std::nullopt, 1, kMaxRequestTokens);
  }
  if (!node.ok()) return node.status();
  Status valid = ValidateWorkloadSpec(s);
  if (!valid.ok()) return valid.WithContext(node.file());
  return s;
}

}  // namespace gimbal
