#include "experiment/runner.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/json_depth.h"
#include "core/random.h"
#include "experiment/expert_load.h"
#include "sim/simulator.h"

namespace gimbal::experiment {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kBenchKeys = {"completed",
                                             "failed",
                                             "duration",
                                             "request_throughput",
                                             "request_goodput",
                                             "output_throughput",
                                             "total_token_throughput",
                                             "mean_ttft_ms",
                                             "median_ttft_ms",
                                             "std_ttft_ms",
                                             "p90_ttft_ms",
                                             "p99_ttft_ms",
                                             "mean_tpot_ms",
                                             "median_tpot_ms",
                                             "std_tpot_ms",
                                             "p90_tpot_ms",
                                             "p99_tpot_ms",
                                             "mean_itl_ms",
                                             "median_itl_ms",
                                             "std_itl_ms",
                                             "p90_itl_ms",
                                             "p99_itl_ms",
                                             "mean_e2el_ms",
                                             "median_e2el_ms",
                                             "std_e2el_ms",
                                             "p90_e2el_ms",
                                             "p99_e2el_ms"};
const std::vector<std::string> kClusterKeys = {"expert_load_max_over_mean",
                                               "a2a_cross_gpu_fraction", "a2a_cross_node_fraction",
                                               "simulated_seconds", "steps"};
const std::vector<std::string> kRankKeys = {"busy_s", "attn_dense_s", "experts_s", "all_to_all_s",
                                            "straggler_wait_s"};
const std::vector<std::string> kStepKeys = {"step_ms", "step_attn_dense_ms", "step_experts_ms",
                                            "step_all_to_all_ms", "step_overhead_ms"};

// Means of the per-rank time breakdown (from the summary's `engines`) and of the per-step costs.
nlohmann::ordered_json StepMeans(const sim::RunResult& r) {
  nlohmann::ordered_json m;
  const auto& engines = r.summary["engines"];
  for (const auto& k : kRankKeys) {
    double sum = 0;
    for (const auto& e : engines) sum += e.value(k, 0.0);
    m["rank_mean_" + k] = engines.empty() ? 0.0 : sum / static_cast<double>(engines.size());
  }
  double d = 0, a = 0, x = 0, c = 0, o = 0;
  for (const auto& s : r.steps) {
    d += s.cost.duration;
    a += s.cost.attn_dense;
    x += s.cost.experts;
    c += s.cost.all_to_all;
    o += s.cost.overhead;
  }
  const double n = r.steps.empty() ? 1.0 : static_cast<double>(r.steps.size());
  m["step_ms"] = d / n * 1e3;
  m["step_attn_dense_ms"] = a / n * 1e3;
  m["step_experts_ms"] = x / n * 1e3;
  m["step_all_to_all_ms"] = c / n * 1e3;
  m["step_overhead_ms"] = o / n * 1e3;
  return m;
}

// Per-step costs averaged in `bins` equal time bins: {"t_s", "steps", "step_ms", ... }.
nlohmann::ordered_json StepSeries(const std::vector<sim::StepRecord>& steps, int bins) {
  nlohmann::ordered_json out;
  if (steps.empty()) return out;
  const double t0 = steps.front().start;
  const double t1 = steps.back().start + steps.back().cost.duration;
  const double w = t1 > t0 ? (t1 - t0) / bins : 1.0;
  std::vector<double> n(bins, 0), d(bins, 0), a(bins, 0), x(bins, 0), c(bins, 0), tok(bins, 0);
  for (const auto& s : steps) {
    const int b = std::clamp(static_cast<int>((s.start - t0) / w), 0, bins - 1);
    n[b] += 1;
    d[b] += s.cost.duration;
    a[b] += s.cost.attn_dense;
    x[b] += s.cost.experts;
    c[b] += s.cost.all_to_all;
    tok[b] += static_cast<double>(s.tokens);
  }
  auto arr = [&](const std::vector<double>& v, bool per_step, double scale) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (int b = 0; b < bins; ++b) {
      const double val = per_step ? (n[b] > 0 ? v[b] / n[b] * scale : 0.0) : v[b] * scale;
      j.push_back(std::round(val * 1e4) / 1e4);
    }
    return j;
  };
  nlohmann::ordered_json t = nlohmann::ordered_json::array();
  for (int b = 0; b < bins; ++b) t.push_back(t0 + b * w);
  out["bin_s"] = w;
  out["t_s"] = t;
  out["steps"] = arr(n, false, 1);
  out["step_ms"] = arr(d, true, 1e3);
  out["attn_dense_ms"] = arr(a, true, 1e3);
  out["experts_ms"] = arr(x, true, 1e3);
  out["all_to_all_ms"] = arr(c, true, 1e3);
  out["tokens_per_step"] = arr(tok, true, 1);
  return out;
}

std::string RequestsCsv(const std::vector<sim::RequestRecord>& reqs) {
  std::string s =
      "id,engine,class,arrival_s,first_token_s,finish_s,prompt_tokens,output_tokens,preemptions,"
      "ttft_ms,e2el_ms\n";
  for (const auto& q : reqs) {
    const bool done = q.completed();
    s += fmt::format("{},{},{},{:.6f},{:.6f},{:.6f},{},{},{},{},{}\n", q.id, q.engine,
                     q.traffic_class, q.arrival, q.first_token, q.finish, q.prompt_tokens,
                     q.output_tokens, q.preemptions,
                     done ? fmt::format("{:.4f}", (q.first_token - q.arrival) * 1e3) : "",
                     done ? fmt::format("{:.4f}", (q.finish - q.arrival) * 1e3) : "");
  }
  return s;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string CsvNumber(const nlohmann::ordered_json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{:.6g}", v.get<double>());
  return "";
}

bool ReadJson(const std::string& path, nlohmann::ordered_json* out) {
  std::ifstream in(path);
  if (!in) return false;
  auto parsed = ParseJsonBounded<nlohmann::ordered_json>(in);  // a deep file overflowed dump()
  if (!parsed.ok()) return false;
  *out = std::move(*parsed);
  return true;
}

// The "id" of a point's JSON; empty when it has none.
std::string PointId(const nlohmann::ordered_json& j) {
  const auto it = j.find("id");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

const std::vector<std::string>& SummaryColumns() {
  static const std::vector<std::string> cols = [] {
    std::vector<std::string> c = kBenchKeys;
    c.insert(c.end(), kClusterKeys.begin(), kClusterKeys.end());
    for (const auto& k : kRankKeys) c.push_back("rank_mean_" + k);
    c.insert(c.end(), kStepKeys.begin(), kStepKeys.end());
    return c;
  }();
  return cols;
}

Status WriteFileAtomic(const std::string& path, const std::string& text) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), counter.fetch_add(1));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError(fmt::format("cannot write {}", tmp));
    f << text;
    f.flush();
    if (!f) return IoError(fmt::format("cannot write {}", tmp));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return IoError(fmt::format("cannot rename {} to {}", tmp, path));
  }
  return Status::Ok();
}

Result<nlohmann::ordered_json> RunPoint(const Point& p, const Suite& suite, const SuitePlan& plan,
                                        const std::string& requests_csv) {
  (void)plan;
  const Scenario& s = *p.spec;
  // The same workload stream as `gimbal simulate --seed`, so a point can be rerun by hand.
  Rng workload_rng = WorkloadRng(s.seed);
  auto reqs = BuildWorkload(s.workload, s.class_weights(), workload_rng);
  if (!reqs.ok()) return reqs.status().WithContext(p.id);
  sim::SimOptions options = s.options;
  options.keep_requests = true;
  options.keep_steps = true;
  auto r = sim::Simulate(s.cluster, s.stacks[p.stack_index], *reqs, options);
  if (!r.ok()) return r.status().WithContext(p.id);

  nlohmann::ordered_json j;
  j["id"] = p.id;
  j["source"] = "sim";
  j["scenario"] = p.scenario;
  j["scenario_file"] = p.scenario_file;
  j["model"] = s.cluster.model.name;
  j["gpu"] = s.cluster.hardware.gpu.name;
  j["dp"] = s.cluster.dp;
  j["rate"] = p.rate;
  j["rate_fraction"] = p.rate_fraction ? nlohmann::ordered_json(*p.rate_fraction) : nullptr;
  j["stack"] = p.stack;
  j["seed"] = p.seed;
  j["num_requests"] = reqs->size();
  j["wall_seconds"] = r->wall_seconds;
  j["summary"] = r->summary;
  j["step_means"] = StepMeans(*r);
  j["step_series"] = StepSeries(r->steps, suite.series_bins);
  if (suite.expert_load && p.top_rate && p.first_seed) {
    ExpertLoadOptions eo;
    eo.bins = suite.expert_load_bins;
    j["expert_load"] = MeasuredExpertLoad(r->steps, r->summary, eo);
  }
  if (!requests_csv.empty()) {
    GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(requests_csv, RequestsCsv(r->requests)));
    j["requests_csv"] = fs::path(requests_csv).filename().string();
  }
  return j;
}

Result<RunSummary> RunPoints(const Suite& suite, const SuitePlan& plan,
                             const std::vector<size_t>& selection, const RunOptions& options) {
  const fs::path out(options.out_dir);
  const fs::path points_dir = out / "points";
  std::error_code ec;
  fs::create_directories(points_dir, ec);
  if (ec) return IoError(fmt::format("cannot create {}: {}", points_dir.string(), ec.message()));

  RunSummary summary;
  std::vector<const Point*> todo;
  for (const size_t i : selection) {
    if (i >= plan.points.size()) {
      return InvalidArgument(
          fmt::format("point index {} is outside the plan's {} points", i, plan.points.size()));
    }
    const Point& p = plan.points[i];
    if (PointFinished(options.out_dir, p.id)) {
      summary.reused++;
    } else {
      todo.push_back(&p);
    }
  }
  int jobs =
      options.jobs > 0 ? options.jobs : static_cast<int>(std::thread::hardware_concurrency());
  jobs = std::max(1, std::min<int>(jobs, static_cast<int>(todo.size())));
  summary.jobs = jobs;
  if (options.log) {
    *options.log << fmt::format("suite {}: {} points ({} done before, {} to run) on {} threads\n",
                                suite.name, selection.size(), summary.reused, todo.size(),
                                todo.empty() ? 0 : jobs);
  }

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;  // guards the log, first_error and computed_ids
  Status first_error;
  size_t done = 0;
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    while (!failed.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= todo.size()) return;
      const Point& p = *todo[i];
      const std::string csv = (points_dir / (p.id + ".requests.csv")).string();
      auto j = RunPoint(p, suite, plan, csv);
      Status st = j.ok()
                      ? WriteFileAtomic(
                            (points_dir / (p.id + ".json")).string(),
                            j->dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n")
                      : j.status();
      std::lock_guard<std::mutex> lock(mu);
      if (!st.ok()) {
        if (first_error.ok()) first_error = st;
        failed = true;
        return;
      }
      summary.computed++;
      summary.computed_ids.push_back(p.id);
      done++;
      if (options.log) {
        const double el =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        *options.log << fmt::format("[{}/{}] {} ({:.1f} s, {:.0f} s elapsed)\n", done, todo.size(),
                                    p.id, (*j)["wall_seconds"].get<double>(), el);
        options.log->flush();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < jobs && !todo.empty(); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!first_error.ok()) return first_error;

  nlohmann::ordered_json run;
  run["computed"] = summary.computed;
  run["reused"] = summary.reused;
  run["computed_ids"] = summary.computed_ids;
  run["jobs"] = jobs;
  GIMBAL_RETURN_IF_ERROR(
      WriteFileAtomic((out / "run.json").string(),
                      run.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  return summary;
}

Status WriteResults(const Suite& suite, const SuitePlan& plan, const std::string& out_dir,
                    RunSummary* summary) {
  const fs::path out(out_dir);
  const fs::path points_dir = out / "points";
  // Collect every point, in plan order.
  nlohmann::ordered_json results;
  results["format"] = "gimbal.experiment/1";
  results["suite"] = suite.name;
  results["suite_file"] = suite.file;
  results["description"] = suite.description;
  results["baseline"] = plan.baseline;
  results["headline"] = plan.headline;
  results["stacks"] = plan.stacks;
  results["seeds"] = suite.seeds;
  results["notes"] = plan.notes;
  results["points"] = nlohmann::ordered_json::array();
  std::string csv = "scenario,rate,rate_fraction,stack,seed,source,num_requests,wall_seconds";
  for (const auto& c : SummaryColumns()) {
    csv.push_back(',');
    csv.append(c);
  }
  csv.append(",id\n");
  for (const Point& p : plan.points) {
    nlohmann::ordered_json j;
    const fs::path jp = points_dir / (p.id + ".json");
    if (!ReadJson(jp.string(), &j)) return IoError(fmt::format("cannot read {}", jp.string()));
    // A point file is read back as written; one edited or damaged since is refused by name
    // (nlohmann throws on a value of another type), so it can be deleted and run again.
    if (!j.is_object() || (j.contains("source") && !j["source"].is_string()) ||
        (j.contains("summary") && !j["summary"].is_object()) ||
        (j.contains("step_means") && !j["step_means"].is_object())) {
      return InvalidArgument(fmt::format(
          "{}: not a point as gimbal experiment writes it; delete it to run the point again",
          jp.string()));
    }
    j["top_rate"] = p.top_rate;
    j["first_seed"] = p.first_seed;
    csv += fmt::format("{},{},{},{},{},{},{},{}", CsvField(p.scenario), CsvNumber(j["rate"]),
                       CsvNumber(j["rate_fraction"]), CsvField(p.stack), p.seed,
                       CsvField(j.value("source", "sim")), CsvNumber(j["num_requests"]),
                       CsvNumber(j["wall_seconds"]));
    for (const auto& c : SummaryColumns()) {
      const auto& src = j["step_means"].contains(c) ? j["step_means"] : j["summary"];
      csv.push_back(',');
      if (src.contains(c)) csv.append(CsvNumber(src[c]));
    }
    csv.push_back(',');
    csv.append(CsvField(p.id));
    csv.push_back('\n');
    results["points"].push_back(std::move(j));
  }
  const std::string json_path = (out / "results.json").string();
  const std::string csv_path = (out / "results.csv").string();
  GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(
      json_path, results.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(csv_path, csv));
  if (summary != nullptr) {
    summary->results_json = json_path;
    summary->results_csv = csv_path;
  }
  return Status::Ok();
}

Result<RunSummary> RunSuite(const Suite& suite, const SuitePlan& plan, const RunOptions& options) {
  std::vector<size_t> all(plan.points.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto summary = RunPoints(suite, plan, all, options);
  if (!summary.ok()) return summary.status();
  GIMBAL_RETURN_IF_ERROR(WriteResults(suite, plan, options.out_dir, &*summary));
  return std::move(*summary);
}

bool PointFinished(const std::string& out_dir, const std::string& id) {
  const fs::path points_dir = fs::path(out_dir) / "points";
  const fs::path jp = points_dir / (id + ".json");
  nlohmann::ordered_json j;
  return fs::exists(jp) && ReadJson(jp.string(), &j) && PointId(j) == id &&
         fs::exists(points_dir / (id + ".requests.csv"));
}

}  // namespace gimbal::experiment
