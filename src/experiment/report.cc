#include "experiment/report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/install_paths.h"
#include "core/json_depth.h"
#include "experiment/live.h"
#include "experiment/runner.h"
#include "experiment/stats.h"

#ifndef GIMBAL_EXPERIMENT_SOURCE_DIR
#define GIMBAL_EXPERIMENT_SOURCE_DIR ""
#endif

namespace gimbal::experiment {
namespace fs = std::filesystem;
namespace {

// Runs argv[0] with argv, waits; returns the exit code (or 127 when it cannot start).
int Run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

const std::vector<PaperHeadline>& PaperHeadlines() {
  static const std::vector<PaperHeadline> h = {{"mean_ttft_ms", -42.9},
                                               {"mean_tpot_ms", -33.3},
                                               {"p99_ttft_ms", -44.3},
                                               {"output_throughput", 3.0}};
  return h;
}

namespace {

using Summaries = std::map<uint64_t, const nlohmann::ordered_json*>;  // seed -> summary

// Latencies are better lower, throughputs higher.
bool LowerIsBetter(const std::string& metric) {
  return metric.size() > 3 && metric.compare(metric.size() - 3, 3, "_ms") == 0;
}

// Per seed both ran (and the reference is non-zero): the reference's and the stack's values.
struct Paired {
  std::vector<double> ref, stack;
};
Paired Pair(const Summaries& stack, const Summaries& ref, const std::string& metric) {
  Paired out;
  for (const auto& [seed, summary] : stack) {
    auto r = ref.find(seed);
    if (r == ref.end()) continue;
    const double rv = r->second->value(metric, 0.0);
    if (rv == 0) continue;
    out.ref.push_back(rv);
    out.stack.push_back(summary->value(metric, 0.0));
  }
  return out;
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// The relative changes (stack − reference) / reference in percent with their t interval.
nlohmann::ordered_json Cell(const Paired& p, double confidence) {
  std::vector<double> rel;
  for (size_t i = 0; i < p.ref.size(); ++i) rel.push_back((p.stack[i] - p.ref[i]) / p.ref[i] * 100);
  const Interval ci = TInterval(rel, confidence);
  nlohmann::ordered_json m;
  m["n"] = ci.n;
  m["mean_pct"] = ci.mean;
  m["ci_lo_pct"] = ci.has_interval() ? nlohmann::ordered_json(ci.lo) : nullptr;
  m["ci_hi_pct"] = ci.has_interval() ? nlohmann::ordered_json(ci.hi) : nullptr;
  m["half_width_pct"] = ci.has_interval() ? nlohmann::ordered_json(ci.half_width) : nullptr;
  m["baseline_mean"] = TInterval(p.ref, confidence).mean;
  m["stack_mean"] = TInterval(p.stack, confidence).mean;
  m["samples_pct"] = rel;
  return m;
}

// The tuned-baseline member (`group/setting`) best for `metric` by its mean over the seeds it
// shares with the baseline; ties go to the first name in byte order. Empty when none has a seed.
std::string BestMember(const std::vector<std::string>& members,
                       const std::map<std::string, Summaries>& at, const Summaries& baseline,
                       const std::string& metric, nlohmann::ordered_json* means) {
  std::string best;
  double best_mean = 0;
  for (const std::string& m : members) {
    const Paired p = Pair(at.at(m), baseline, metric);
    if (p.stack.empty()) continue;
    const double mean = Mean(p.stack);
    (*means)[m.substr(m.find('/') + 1)] = mean;
    const bool better = LowerIsBetter(metric) ? mean < best_mean : mean > best_mean;
    if (best.empty() || better || (mean == best_mean && m < best)) {
      best = m;
      best_mean = mean;
    }
  }
  return best;
}

// The fields of results' points HeadlineTable reads, checked first: nlohmann's value() and get()
// throw on a value of another type, and a const operator[] on a missing key is undefined.
Status CheckPoints(const nlohmann::ordered_json& points) {
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    auto bad = [&](const char* what) {
      return InvalidArgument(fmt::format("points[{}]: {}", i, what));
    };
    if (!p.is_object()) return bad("must be an object");
    for (const char* k : {"source", "scenario", "stack"}) {
      if (p.contains(k) && !p[k].is_string())
        return bad("'source', 'scenario' and 'stack' must be strings");
    }
    if (p.contains("rate") && !p["rate"].is_number()) return bad("'rate' must be a number");
    if (p.contains("seed") && !(p["seed"].is_number_unsigned() ||
                                (p["seed"].is_number_integer() && p["seed"].get<int64_t>() >= 0))) {
      return bad("'seed' must be a non-negative integer");
    }
    if (!p.contains("summary") || !p["summary"].is_object()) return bad("needs a 'summary' object");
  }
  return Status::Ok();
}

Result<nlohmann::ordered_json> HeadlineTableOfCheckedPoints(const nlohmann::ordered_json& results,
                                                            double confidence) {
  const std::string baseline = results.value("baseline", "");
  const std::string headline = results.value("headline", "");
  // (source, scenario) -> highest rate; and the points at it: stack -> seed -> summary.
  std::map<std::pair<std::string, std::string>, double> top;
  for (const auto& p : results["points"]) {
    const auto key = std::make_pair(p.value("source", "sim"), p.value("scenario", ""));
    const double r = p.value("rate", 0.0);
    if (!top.count(key) || r > top[key]) top[key] = r;
  }
  nlohmann::ordered_json out;
  out["confidence"] = confidence;
  out["baseline"] = baseline;
  out["headline"] = headline;
  out["paper"] = nlohmann::ordered_json::object();
  for (const auto& h : PaperHeadlines()) out["paper"][h.metric] = h.change_pct;
  out["rows"] = nlohmann::ordered_json::array();
  out["vs_tuned"] = nlohmann::ordered_json::array();
  for (const auto& [key, rate] : top) {
    std::map<std::string, Summaries> at;
    std::vector<std::string> order;
    for (const auto& p : results["points"]) {
      if (p.value("source", "sim") != key.first || p.value("scenario", "") != key.second ||
          p.value("rate", 0.0) != rate) {
        continue;
      }
      const std::string st = p.value("stack", "");
      if (!at.count(st)) order.push_back(st);
      at[st][p.value("seed", uint64_t{0})] = &p["summary"];
    }
    if (!at.count(baseline)) continue;
    // Tuned-baseline members (`group/setting`) fold into one row per group, where the group's
    // first member would be.
    std::vector<std::string> rows_order;
    std::map<std::string, std::vector<std::string>> members;
    for (const std::string& st : order) {
      const auto slash = st.find('/');
      const std::string name = slash == std::string::npos ? st : st.substr(0, slash);
      if (slash != std::string::npos) members[name].push_back(st);
      if (std::find(rows_order.begin(), rows_order.end(), name) == rows_order.end()) {
        rows_order.push_back(name);
      }
    }
    auto row_head = [&](const std::string& st) {
      nlohmann::ordered_json row;
      row["source"] = key.first;
      row["scenario"] = key.second;
      row["rate"] = rate;
      row["stack"] = st;
      row["is_headline"] = st == headline;
      row["tuned"] = members.count(st) > 0;
      return row;
    };
    for (const std::string& st : rows_order) {
      if (st == baseline) continue;
      nlohmann::ordered_json row = row_head(st);
      nlohmann::ordered_json metrics;
      int n_seeds = 0;
      const bool tuned = members.count(st) > 0;
      if (tuned) row["members"] = members[st].size();
      for (const auto& h : PaperHeadlines()) {
        std::string source_stack = st;
        nlohmann::ordered_json means = nlohmann::ordered_json::object();
        if (tuned) {
          source_stack = BestMember(members[st], at, at[baseline], h.metric, &means);
          if (source_stack.empty()) source_stack = members[st].front();
        }
        nlohmann::ordered_json m = Cell(Pair(at[source_stack], at[baseline], h.metric), confidence);
        n_seeds = std::max(n_seeds, m["n"].get<int>());
        if (tuned) {
          m["paper_pct"] = nullptr;
          m["best_stack"] = source_stack;
          m["best_setting"] = source_stack.substr(source_stack.find('/') + 1);
          m["member_means"] = means;
        } else {
          m["paper_pct"] = h.change_pct;
        }
        metrics[h.metric] = m;
      }
      row["n_seeds"] = n_seeds;
      row["metrics"] = metrics;
      out["rows"].push_back(row);
    }
    // The headline stack against each tuned baseline: per metric, against that metric's best
    // member, seed by seed.
    if (!at.count(headline) || headline == baseline) continue;
    for (const std::string& group : rows_order) {
      if (!members.count(group)) continue;
      nlohmann::ordered_json row = row_head(headline);
      row["against"] = group;
      nlohmann::ordered_json metrics;
      int n_seeds = 0;
      for (const auto& h : PaperHeadlines()) {
        nlohmann::ordered_json means = nlohmann::ordered_json::object();
        std::string best = BestMember(members[group], at, at[baseline], h.metric, &means);
        if (best.empty()) best = members[group].front();
        nlohmann::ordered_json m = Cell(Pair(at[headline], at[best], h.metric), confidence);
        n_seeds = std::max(n_seeds, m["n"].get<int>());
        m["against_stack"] = best;
        m["against_setting"] = best.substr(best.find('/') + 1);
        metrics[h.metric] = m;
      }
      row["n_seeds"] = n_seeds;
      row["metrics"] = metrics;
      out["vs_tuned"].push_back(row);
    }
  }
  return out;
}

}  // namespace

Result<nlohmann::ordered_json> HeadlineTable(const nlohmann::ordered_json& results,
                                             double confidence) {
  if (!results.contains("points") || !results["points"].is_array()) {
    return InvalidArgument("results have no 'points' list");
  }
  GIMBAL_RETURN_IF_ERROR(CheckPoints(results["points"]));
  for (const char* k : {"baseline", "headline"}) {
    if (results.contains(k) && !results[k].is_string()) {
      return InvalidArgument(fmt::format("results: '{}' must be a string", k));
    }
  }
  // A summary metric of another type than the table reads (a string where a number is) still
  // throws from value(): refused with nlohmann's message rather than ending the process.
  try {
    return HeadlineTableOfCheckedPoints(results, confidence);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(fmt::format("results: a value of the wrong type: {}", e.what()));
  }
}

std::string FindReportScript() {
  if (const char* env = std::getenv("GIMBAL_REPORT_SCRIPT"); env != nullptr && *env != '\0') {
    return fs::exists(env) ? std::string(env) : std::string();
  }
  if (const std::string& share = InstalledShareDir(); !share.empty()) {
    const fs::path installed = fs::path(share) / "report.py";
    if (fs::exists(installed)) return installed.string();
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path()) {
      const fs::path candidate = d / "scripts" / "report.py";
      if (fs::exists(candidate)) return candidate.string();
    }
  }
  const fs::path src = fs::path(GIMBAL_EXPERIMENT_SOURCE_DIR) / "scripts" / "report.py";
  if (!std::string(GIMBAL_EXPERIMENT_SOURCE_DIR).empty() && fs::exists(src)) return src.string();
  return "";
}

Result<std::string> MakeReport(const ReportOptions& options) {
  const fs::path dir(options.results_dir);
  const fs::path results_path = dir / "results.json";
  std::ifstream in(results_path);
  if (!in) {
    return NotFound(
        fmt::format("{} not found (run `gimbal experiment --suite FILE --out {}` first)",
                    results_path.string(), options.results_dir));
  }
  auto parsed = ParseJsonBounded<nlohmann::ordered_json>(in);
  if (!parsed.ok()) {
    return InvalidArgument(fmt::format("{}: {}", results_path.string(), parsed.status().message()));
  }
  nlohmann::ordered_json results = std::move(*parsed);
  const fs::path out = options.out_dir.empty() ? dir / "report" : fs::path(options.out_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return IoError(fmt::format("cannot create {}: {}", out.string(), ec.message()));

  fs::path live_dir = options.live_dir;
  if (live_dir.empty() && fs::exists(dir / "live" / "live.json")) live_dir = dir / "live";
  nlohmann::ordered_json live_points = nlohmann::ordered_json::array();
  if (!live_dir.empty()) {
    auto lp = LoadLivePoints(live_dir.string(), (out / "live").string());
    if (!lp.ok()) return lp.status();
    live_points = std::move(*lp);
    if (!results.contains("points") || !results["points"].is_array()) {
      results["points"] = nlohmann::ordered_json::array();
    }
    for (const auto& p : live_points) results["points"].push_back(p);
  }
  auto table = HeadlineTable(results);
  if (!table.ok()) return table.status().WithContext(results_path.string());
  const fs::path live_path = out / "live_points.json";
  if (!live_points.empty()) {
    try {
      (*table)["live"] = LiveComparison(results["points"]);
    } catch (const nlohmann::json::exception& e) {
      return InvalidArgument(
          fmt::format("{}: a value of the wrong type: {}", results_path.string(), e.what()));
    }
    (*table)["live"]["dir"] = fs::absolute(live_dir).lexically_normal().string();
    GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(
        live_path.string(),
        live_points.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  } else {
    fs::remove(live_path, ec);
  }
  const fs::path headline_path = out / "headline.json";
  GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(headline_path.string(), table->dump(1) + "\n"));

  std::string python = options.python;
  if (const char* env = std::getenv("GIMBAL_PYTHON"); env != nullptr && *env != '\0') python = env;
  if (::access(python.c_str(), X_OK) != 0) {
    return NotFound(fmt::format(
        "{} not found: the report's plots need Debian's python3 with python3-matplotlib "
        "(run scripts/install-deps.sh, or set GIMBAL_PYTHON to a python with matplotlib)",
        python));
  }
  if (Run({python, "-c", "import matplotlib"}) != 0) {
    return NotFound(fmt::format(
        "{} cannot import matplotlib: install python3-matplotlib (scripts/install-deps.sh)",
        python));
  }
  const std::string script = FindReportScript();
  if (script.empty()) {
    return NotFound(
        "scripts/report.py not found next to the gimbal binary or in its source tree (set "
        "GIMBAL_REPORT_SCRIPT to its path)");
  }
  std::vector<std::string> argv = {python,       script,
                                   "--results",  results_path.string(),
                                   "--headline", headline_path.string(),
                                   "--out",      out.string()};
  if (!live_points.empty()) {
    argv.push_back("--live");
    argv.push_back(live_path.string());
  }
  const int rc = Run(argv);
  if (rc != 0) return Internal(fmt::format("{} {} failed with exit code {}", python, script, rc));
  const fs::path index = out / "index.html";
  if (!fs::exists(index)) return Internal(fmt::format("{} wrote no {}", script, index.string()));
  return index.string();
}

}  // namespace gimbal::experiment
