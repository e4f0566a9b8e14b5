// End to end: `gimbal experiment` on configs/experiments/tiny.yaml, resumption after losing a
// point, `gimbal report` (its TTFT-by-prompt-length table recomputed from results.json), and the
// page in Debian's headless chromium (screenshot written to BUILD_DIR/report.png). Needs
// /usr/bin/python3 with matplotlib and chromium (scripts/install-deps.sh installs both); fails,
// rather than skips, when they are missing.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {
namespace fs = std::filesystem;

const std::string kGimbal = GIMBAL_BINARY;
const std::string kSource = GIMBAL_SOURCE_DIR;
const std::string kBuild = GIMBAL_BUILD_DIR;

struct Output {
  int rc = -1;
  std::string text;
};

Output Sh(const std::string& cmd) {
  Output o;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return o;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.text.append(buf.data(), n);
  const int st = ::pclose(p);
  o.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Quote(const std::string& s) {
  return "'" + s + "'";
}

std::string FindChromium() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (fs::exists(c)) return c;
  }
  return "";
}

const std::vector<std::string> kKinds = {"latency_vs_rate", "latency_cdf",    "throughput_latency",
                                         "expert_load",     "step_breakdown", "step_time_series",
                                         "ablation",        "ttft_by_decile"};

std::string Fixed1(double v) {
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%.1f", v);
  return buf.data();
}

// The TTFT-by-prompt-length table of `scenario` in the report (index.html and deciles.json),
// recomputed here from results.json: per stack at `rate`, each decile's mean and p99 TTFT averaged
// over the seeds' summaries, in stack order; a cell tinted where its p99 is more than 10% off the
// baseline's.
void ExpectDecileTable(const nlohmann::json& results, const std::string& index,
                       const nlohmann::json& deciles_json, const std::string& scenario,
                       double rate) {
  const std::string baseline = results["baseline"];
  struct Row {
    std::string stack;
    int seeds = 0;
    std::vector<double> mean = std::vector<double>(10, 0.0), p99 = std::vector<double>(10, 0.0);
    std::vector<int64_t> lo = std::vector<int64_t>(10, INT64_MAX), hi = std::vector<int64_t>(10, 0);
  };
  std::vector<Row> rows;
  for (const auto& s : results["stacks"]) {
    Row r;
    r.stack = s.get<std::string>();
    for (const auto& p : results["points"]) {
      if (p["scenario"] != scenario || p["stack"] != r.stack || p["rate"].get<double>() != rate) {
        continue;
      }
      const auto& d = p["summary"]["ttft_by_prompt_decile"];
      ASSERT_EQ(d.size(), 10u) << p["id"];
      EXPECT_FALSE(p["summary"].contains("p999_ttft_ms")) << "fewer than 1,000 requests";
      r.seeds++;
      for (size_t i = 0; i < 10; ++i) {
        r.mean[i] += d[i]["mean_ttft_ms"].get<double>();
        r.p99[i] += d[i]["p99_ttft_ms"].get<double>();
        r.lo[i] = std::min(r.lo[i], d[i]["prompt_tokens_min"].get<int64_t>());
        r.hi[i] = std::max(r.hi[i], d[i]["prompt_tokens_max"].get<int64_t>());
      }
    }
    if (r.seeds == 0) continue;
    for (size_t i = 0; i < 10; ++i) {
      r.mean[i] /= r.seeds;
      r.p99[i] /= r.seeds;
    }
    rows.push_back(r);
  }
  ASSERT_GE(rows.size(), 2u);
  ASSERT_EQ(rows.front().stack, baseline);
  const Row& base = rows.front();

  // deciles.json holds the same figures.
  ASSERT_EQ(deciles_json.size(), 1u) << deciles_json.dump();
  const auto& table = deciles_json[0];
  EXPECT_EQ(table["scenario"], scenario);
  ASSERT_EQ(table["rows"].size(), rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    const auto& jr = table["rows"][k];
    EXPECT_EQ(jr["stack"], rows[k].stack);
    EXPECT_TRUE(jr["p999_ttft_ms"].is_null());
    for (size_t i = 0; i < 10; ++i) {
      EXPECT_NEAR(jr["deciles"][i]["mean_ttft_ms"].get<double>(), rows[k].mean[i], 1e-9);
      EXPECT_NEAR(jr["deciles"][i]["p99_ttft_ms"].get<double>(), rows[k].p99[i], 1e-9);
    }
  }

  // The page: the header's prompt ranges over every run, then one row per stack, cell by cell.
  const std::string id = "id=\"deciles-" + scenario + "\"";
  const auto at = index.find(id);
  ASSERT_NE(at, std::string::npos) << "no decile table for " << scenario;
  const std::string html = index.substr(at, index.find("</table>", at) - at);
  for (size_t i = 0; i < 10; ++i) {
    int64_t lo = INT64_MAX, hi = 0;
    for (const Row& r : rows) {
      lo = std::min(lo, r.lo[i]);
      hi = std::max(hi, r.hi[i]);
    }
    const std::string th = "<th>" + std::to_string(i + 1) + "<br><small>" + std::to_string(lo) +
                           "&ndash;" + std::to_string(hi) + " tok</small></th>";
    EXPECT_NE(html.find(th), std::string::npos) << th << "\n" << html;
  }
  EXPECT_EQ(html.find("p99.9"), std::string::npos) << "no run has p99.9 TTFT";
  int tinted = 0;
  for (const Row& r : rows) {
    std::string tr = "<td>" + r.stack + "</td><td>" + std::to_string(r.seeds) + "</td>";
    for (size_t i = 0; i < 10; ++i) {
      std::string cls;
      if (&r != &base) {
        const double ratio = r.p99[i] / base.p99[i];
        cls = ratio > 1.1 ? " class=\"worse\"" : ratio < 1 / 1.1 ? " class=\"better\"" : "";
      }
      tinted += cls.empty() ? 0 : 1;
      tr += "<td" + cls + ">" + Fixed1(r.mean[i]) + " / " + Fixed1(r.p99[i]) + "</td>";
    }
    EXPECT_NE(html.find(tr + "</tr>"), std::string::npos) << tr << "\n" << html;
  }
  EXPECT_GT(tinted, 0) << html;
}

TEST(ExperimentReport, TinySuiteResumesAndRendersInChromium) {
  const fs::path out = fs::path(kBuild) / "experiment_e2e";
  fs::remove_all(out);
  const std::string suite = kSource + "/configs/experiments/tiny.yaml";
  const std::string run = kGimbal + " experiment --suite " + Quote(suite) + " --out " +
                          Quote(out.string()) + " --jobs 2";

  // 1. The sweep: 2 rates x stacks x 2 seeds; the missing scenario is skipped with a note (and the
  // placement-only stack too where the scenario loader has no stack placements).
  Output dry = Sh(run + " --dry-run");
  ASSERT_EQ(dry.rc, 0) << dry.text;
  const std::regex count_re("\\n(\\d+) points\\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dry.text, m, count_re)) << dry.text;
  const int n = std::stoi(m[1].str());
  ASSERT_TRUE(n == 16 || n == 20) << dry.text;
  const int stacks = n / 4;
  Output first = Sh(run);
  ASSERT_EQ(first.rc, 0) << first.text;
  EXPECT_NE(first.text.find("computed " + std::to_string(n) + " points, reused 0"),
            std::string::npos)
      << first.text;
  EXPECT_NE(first.text.find("note: skipped scenario"), std::string::npos) << first.text;
  ASSERT_TRUE(fs::exists(out / "results.json"));
  ASSERT_TRUE(fs::exists(out / "results.csv"));
  const std::string csv = Read(out / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), n + 1);  // header + a row per point
  EXPECT_EQ(csv.rfind("scenario,rate,rate_fraction,stack,seed,", 0), 0u);
  for (const char* col :
       {",mean_ttft_ms,", ",p99_ttft_ms,", ",mean_tpot_ms,", ",output_throughput,",
        ",rank_mean_straggler_wait_s,", ",step_experts_ms,"}) {
    EXPECT_NE(csv.find(col), std::string::npos) << col;
  }

  // 2. Resumption: lose one point, rerun, only that point is computed; the others are untouched.
  const std::string lost = "qwen3-8xh200__r20__gimbal__s2";
  std::map<std::string, fs::file_time_type> mtimes;
  for (const auto& e : fs::directory_iterator(out / "points")) {
    if (e.path().extension() == ".json") mtimes[e.path().filename().string()] = e.last_write_time();
  }
  ASSERT_EQ(mtimes.size(), static_cast<size_t>(n));
  ASSERT_TRUE(fs::remove(out / "points" / (lost + ".json")));
  Output second = Sh(run);
  ASSERT_EQ(second.rc, 0) << second.text;
  EXPECT_NE(second.text.find("computed 1 points, reused " + std::to_string(n - 1)),
            std::string::npos)
      << second.text;
  const auto run_json = nlohmann::json::parse(Read(out / "run.json"));
  EXPECT_EQ(run_json["computed_ids"], nlohmann::json::array({lost}));
  for (const auto& [name, t] : mtimes) {
    const fs::path p = out / "points" / name;
    ASSERT_TRUE(fs::exists(p)) << name;
    if (name != lost + ".json") {
      EXPECT_EQ(fs::last_write_time(p), t) << name << " was rewritten";
    }
  }

  // 3. The report: every plot, the table, the README section.
  Output rep = Sh(kGimbal + " report " + Quote(out.string()));
  ASSERT_EQ(rep.rc, 0) << rep.text;
  const fs::path report = out / "report";
  EXPECT_NE(rep.text.find((report / "index.html").string()), std::string::npos) << rep.text;
  const std::string index = Read(report / "index.html");
  std::set<std::string> expected;
  for (const auto& kind : kKinds) {
    const std::string png = kind + "__qwen3-8xh200.png";
    expected.insert(png);
    ASSERT_TRUE(fs::exists(report / png)) << png;
    EXPECT_GT(fs::file_size(report / png), 1000u) << png;
    EXPECT_EQ(Read(report / png).substr(1, 3), "PNG") << png;
    EXPECT_NE(index.find("src=\"" + png + "\""), std::string::npos) << png;
  }
  EXPECT_NE(index.find("id=\"headline-table\""), std::string::npos);
  const auto headline = nlohmann::json::parse(Read(report / "headline.json"));
  ASSERT_EQ(headline["rows"].size(), static_cast<size_t>(stacks - 1));  // every stack against vllm
  for (const auto& row : headline["rows"]) {
    EXPECT_EQ(row["n_seeds"], 2);
    EXPECT_TRUE(row["metrics"]["mean_ttft_ms"]["ci_lo_pct"].is_number());
  }
  // TTFT by prompt-length decile at the top rate (60 req/s = 0.75 x 80), every stack.
  ExpectDecileTable(nlohmann::json::parse(Read(out / "results.json")), index,
                    nlohmann::json::parse(Read(report / "deciles.json")), "qwen3-8xh200", 60);
  const std::string md = Read(report / "results.md");
  EXPECT_NE(md.find("| **gimbal** |"), std::string::npos) << md;
  EXPECT_NE(md.find("(paper -42.9%)"), std::string::npos) << md;

  // 4. The page in a real headless browser: a screenshot, and the DOM after load shows the table
  // and that every image decoded (the page's own check fills #image-status).
  const std::string chromium = FindChromium();
  ASSERT_FALSE(chromium.empty())
      << "chromium is not installed: run scripts/install-deps.sh (apt-get install chromium)";
  const fs::path profile = fs::path(kBuild) / "experiment_e2e_chromium_profile";
  fs::remove_all(profile);
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
      " --disable-background-networking --disable-component-update --disable-sync"
      " --run-all-compositor-stages-before-draw --virtual-time-budget=10000 --user-data-dir=" +
      Quote(profile.string());
  const std::string url = "file://" + fs::absolute(report / "index.html").string();
  const fs::path shot = fs::path(kBuild) / "report.png";
  fs::remove(shot);
  Output ss = Sh("timeout 90 " + chromium + flags + " --window-size=1400,2000 --screenshot=" +
                 Quote(shot.string()) + " " + Quote(url));
  ASSERT_TRUE(fs::exists(shot)) << ss.text;
  EXPECT_GT(fs::file_size(shot), 10000u);
  Output dom = Sh("timeout 90 " + chromium + flags + " --enable-logging=stderr --v=0 --dump-dom " +
                  Quote(url));
  ASSERT_EQ(dom.rc, 0) << dom.text;
  EXPECT_NE(dom.text.find("id=\"headline-table\""), std::string::npos);
  EXPECT_NE(dom.text.find("id=\"deciles-qwen3-8xh200\""), std::string::npos);
  EXPECT_NE(dom.text.find("all 8 images loaded"), std::string::npos) << dom.text.substr(0, 4000);
  EXPECT_EQ(dom.text.find("ERR_FILE_NOT_FOUND"), std::string::npos) << dom.text.substr(0, 4000);
  const std::regex img("<img src=\"([^\"]+)\"");
  int imgs = 0;
  for (auto it = std::sregex_iterator(dom.text.begin(), dom.text.end(), img);
       it != std::sregex_iterator(); ++it) {
    imgs++;
    EXPECT_TRUE(fs::exists(report / (*it)[1].str())) << (*it)[1].str();
    EXPECT_TRUE(expected.count((*it)[1].str())) << (*it)[1].str();
  }
  EXPECT_EQ(imgs, 8);
  fs::remove_all(profile);
}

// A tuned baseline end to end: tiny.yaml with vllm at four engine settings; the report folds the
// members into one vllm-best row (the winning setting per metric) and compares gimbal with it.
TEST(ExperimentReport, TunedBaselineIsOneRowWithTheWinningSettings) {
  const fs::path out = fs::path(kBuild) / "experiment_e2e_tuned";
  fs::remove_all(out);
  fs::create_directories(out);
  std::string suite = Read(kSource + "/configs/experiments/tiny.yaml");
  suite =
      std::regex_replace(suite, std::regex("\\.\\./scenarios/"), kSource + "/configs/scenarios/");
  suite +=
      "tuned_baseline:\n  name: vllm-best\n  stack: vllm\n"
      "  grid: {max_num_batched_tokens: [1024, 16384], prefill_schedule_interval: [1, 2]}\n";
  std::ofstream(out / "suite.yaml") << suite;
  Output run = Sh(kGimbal + " experiment --suite " + Quote((out / "suite.yaml").string()) +
                  " --out " + Quote((out / "run").string()) + " --jobs 2");
  ASSERT_EQ(run.rc, 0) << run.text;
  const auto results = nlohmann::json::parse(Read(out / "run" / "results.json"));
  const std::set<std::string> members = {"vllm-best/b1024-i1", "vllm-best/b1024-i2",
                                         "vllm-best/b16384-i1", "vllm-best/b16384-i2"};
  std::set<std::string> ran;
  for (const auto& s : results["stacks"]) ran.insert(s.get<std::string>());
  for (const auto& m : members) EXPECT_TRUE(ran.count(m)) << m;
  Output rep = Sh(kGimbal + " report " + Quote((out / "run").string()));
  ASSERT_EQ(rep.rc, 0) << rep.text;
  const fs::path report = out / "run" / "report";
  const auto headline = nlohmann::json::parse(Read(report / "headline.json"));
  int tuned_rows = 0;
  for (const auto& row : headline["rows"]) {
    EXPECT_FALSE(members.count(row["stack"].get<std::string>())) << "a member is a row";
    if (!row["tuned"].get<bool>()) continue;
    tuned_rows++;
    EXPECT_EQ(row["stack"], "vllm-best");
    EXPECT_EQ(row["members"], 4);
    EXPECT_EQ(row["n_seeds"], 2);
    for (const auto& [metric, m] : row["metrics"].items()) {
      EXPECT_TRUE(members.count(m["best_stack"].get<std::string>())) << metric;
      // The winner's mean is the best of the members' means.
      const bool lower = metric != "output_throughput";
      for (const auto& [setting, v] : m["member_means"].items()) {
        if (lower) {
          EXPECT_LE(m["stack_mean"].get<double>(), v.get<double>() + 1e-9) << metric << setting;
        } else {
          EXPECT_GE(m["stack_mean"].get<double>(), v.get<double>() - 1e-9) << metric << setting;
        }
      }
    }
  }
  EXPECT_EQ(tuned_rows, 1);
  ASSERT_EQ(headline["vs_tuned"].size(), 1u);
  EXPECT_EQ(headline["vs_tuned"][0]["stack"], "gimbal");
  EXPECT_EQ(headline["vs_tuned"][0]["against"], "vllm-best");
  const std::string md = Read(report / "results.md");
  EXPECT_NE(md.find("| vllm-best (best of 4) | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| **gimbal** | vllm-best | 2 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("| vllm-best/"), std::string::npos) << md;
  const std::string index = Read(report / "index.html");
  EXPECT_NE(index.find("id=\"tuned-table\""), std::string::npos);
  // The decile table shows the group by its member with the lowest mean p99 TTFT, the one the
  // headline table picked for p99 TTFT.
  std::string p99_best;
  for (const auto& row : headline["rows"]) {
    if (row["tuned"].get<bool>()) p99_best = row["metrics"]["p99_ttft_ms"]["best_setting"];
  }
  const std::string decile_row = "<td>vllm-best (" + p99_best + ", lowest p99 TTFT)</td><td>2</td>";
  EXPECT_NE(index.find(decile_row), std::string::npos) << decile_row;
  fs::remove_all(out);
}

// The live demo end to end: emulated engines, two routers, `gimbal bench` through each, the same
// scenario in the simulator, and the report with simulated and live figures side by side.
TEST(ExperimentReport, LiveDemoReportShowsSimulatedAndLiveSideBySide) {
  const fs::path out = fs::path(kBuild) / "live_demo_e2e";
  fs::remove_all(out);
  Output demo = Sh("GIMBAL=" + Quote(kGimbal) + " OUT=" + Quote(out.string()) +
                   " NUM_PROMPTS=40 RATE=20 RUN_TIMEOUT=60 timeout 240 bash " +
                   Quote(kSource + "/scripts/live-demo.sh"));
  ASSERT_EQ(demo.rc, 0) << demo.text;
  const fs::path report = out / "report";
  const std::string last = "report: " + (report / "index.html").string() + "\n";
  ASSERT_GE(demo.text.size(), last.size());
  EXPECT_EQ(demo.text.substr(demo.text.size() - last.size()), last) << demo.text;
  for (const char* f : {"live/live.json", "live/vllm-baseline.json", "live/gimbal.json",
                        "live/scenario.yaml", "results.json", "report/live_points.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }

  // The table: one row per stack, simulated and live figures and the gap, on the same workload
  // (the simulated point ran exactly the requests the live run sent).
  const auto headline = nlohmann::json::parse(Read(report / "headline.json"));
  ASSERT_TRUE(headline.contains("live")) << headline.dump();
  const auto& rows = headline["live"]["rows"];
  ASSERT_EQ(rows.size(), 2u) << headline["live"].dump();
  std::set<std::string> stacks;
  for (const auto& row : rows) {
    stacks.insert(row["stack"].get<std::string>());
    for (const char* m : {"mean_ttft_ms", "mean_tpot_ms", "p99_ttft_ms", "request_throughput"}) {
      const auto& c = row["metrics"][m];
      ASSERT_TRUE(c["sim"].is_number() && c["live"].is_number() && c["gap_pct"].is_number())
          << m << " " << row.dump();
      EXPECT_GT(c["live"].get<double>(), 0) << m;
      const double gap =
          (c["live"].get<double>() - c["sim"].get<double>()) / c["sim"].get<double>();
      EXPECT_NEAR(c["gap_pct"].get<double>(), gap * 100, 1e-6) << m;
    }
  }
  EXPECT_EQ(stacks, (std::set<std::string>{"vllm-baseline", "gimbal"}));
  const auto bench = nlohmann::json::parse(Read(out / "live" / "gimbal.json"));
  const auto results = nlohmann::json::parse(Read(out / "results.json"));
  ASSERT_EQ(results["points"].size(), 2u);
  std::vector<int64_t> sim_prompts;
  {
    std::istringstream csv(
        Read(out / "points" / results["points"][0]["requests_csv"].get<std::string>()));
    std::string line;
    std::getline(csv, line);
    while (std::getline(csv, line)) {
      std::vector<std::string> f;
      std::stringstream ls(line);
      for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
      ASSERT_GE(f.size(), 7u) << line;
      sim_prompts.push_back(std::stoll(f[6]));
    }
  }
  EXPECT_EQ(nlohmann::json(sim_prompts), bench["input_lens"]);

  // The page: the side-by-side table and the gap sentence, rendered by chromium.
  const std::string index = Read(report / "index.html");
  EXPECT_NE(index.find("id=\"live-table\""), std::string::npos);
  EXPECT_NE(index.find("id=\"live-gap\""), std::string::npos);
  const std::string md = Read(report / "results.md");
  EXPECT_NE(md.find("sim / live / gap"), std::string::npos) << md;
  EXPECT_NE(md.find("| live | live-demo |"), std::string::npos) << md;  // headline row per source
  const std::string chromium = FindChromium();
  ASSERT_FALSE(chromium.empty()) << "chromium is not installed: run scripts/install-deps.sh";
  const fs::path profile = fs::path(kBuild) / "live_demo_e2e_chromium_profile";
  fs::remove_all(profile);
  const std::string url = "file://" + fs::absolute(report / "index.html").string();
  Output dom = Sh("timeout 90 " + chromium +
                  " --headless --no-sandbox --disable-gpu --no-first-run --disable-sync"
                  " --disable-background-networking --disable-component-update"
                  " --virtual-time-budget=10000 --user-data-dir=" +
                  Quote(profile.string()) + " --dump-dom " + Quote(url));
  ASSERT_EQ(dom.rc, 0) << dom.text;
  const auto table_at = dom.text.find("id=\"live-table\"");
  ASSERT_NE(table_at, std::string::npos) << dom.text.substr(0, 4000);
  const std::string table =
      dom.text.substr(table_at, dom.text.find("</table>", table_at) - table_at);
  EXPECT_NE(table.find("<td>vllm-baseline</td>"), std::string::npos) << table;
  EXPECT_NE(table.find("<td>gimbal</td>"), std::string::npos) << table;
  EXPECT_NE(table.find("%</td>"), std::string::npos) << table;  // the gap cells
  EXPECT_NE(dom.text.find("all 8 images loaded"), std::string::npos) << dom.text.substr(0, 4000);
  fs::remove_all(profile);
}

TEST(ExperimentReport, ClearErrors) {
  const fs::path empty = fs::path(kBuild) / "experiment_e2e_empty";
  fs::remove_all(empty);
  fs::create_directories(empty);
  Output r = Sh(kGimbal + " report " + Quote(empty.string()));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.text.find("run `gimbal experiment"), std::string::npos) << r.text;
  std::ofstream(empty / "results.json") << "{\"points\": []}\n";
  Output p =
      Sh("GIMBAL_PYTHON=/nonexistent/python3 " + kGimbal + " report " + Quote(empty.string()));
  EXPECT_EQ(p.rc, 2);
  EXPECT_NE(p.text.find("python3-matplotlib"), std::string::npos) << p.text;
  Output s = Sh(kGimbal + " experiment --suite /nonexistent.yaml --out " + Quote(empty.string()));
  EXPECT_EQ(s.rc, 2);
  EXPECT_NE(s.text.find("cannot open suite file"), std::string::npos) << s.text;
  fs::remove_all(empty);
}

}  // namespace
